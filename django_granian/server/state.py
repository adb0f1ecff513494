"""Per-worker state shared by every connection: config, app interface, limits, clock, Date header.

The few attributes that hold objects of higher layers are how those layers are reached without an
import pointing upwards (see tests/test_layers.py); each says who sets it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from email.utils import formatdate
from typing import Any, Callable

from ..config import Config
from ..protocol.http11 import Limits
from ..protocol.proxy import ProxyTrust
from .sockets import transport_peers

SERVER_HEADER = b"server: django-granian\r\n"


class ServerState:
    """What every connection of one worker shares.

    ``now`` is ``loop.time()`` refreshed once a second by :meth:`tick`, together with the cached
    ``date`` header; per-request code reads attributes, never the clock (except for access logs).
    """

    def __init__(self, config: Config, interface: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        # set by BaseServer.serve (from make_interface: serving.py): app/interface.py HTTPInterface, the
        # transports' way to the app (http(), open_websocket(), serves_websockets)
        self.interface = interface
        self.loop = loop
        self.limits = Limits(
            max_head=config.http1_buffer_size,
            max_line=config.limit_request_line,
            max_fields=config.limit_request_fields,
            max_field_size=config.limit_request_field_size,
            max_body=config.limit_request_body,
        )
        self.keep_alive = config.http1_keep_alive
        self.keep_alive_timeout = config.keep_alive_timeout
        self.header_timeout = config.http1_header_read_timeout / 1000.0
        self.body_timeout = config.request_body_timeout
        prefix = config.url_path_prefix or ""
        self.root_path = prefix
        self.prefix_bytes = prefix.encode("latin-1")
        nets = config.forwarded_networks()
        self.proxy: ProxyTrust | None = ProxyTrust(nets) if (nets is None or nets) else None
        self.access_log = config.access_log and config.log
        self.access_fmt = config.access_log_fmt
        self.server_header = config.server_header
        self.connections: set[Any] = set()
        self.lifespan_state: dict | None = None
        self.requests = 0  # served by this worker (max-requests, metrics)
        # --backpressure: requests dispatched at once; HTTP/1.1 connections and HTTP/2 streams over the cap
        # wait in `waiting` (one FIFO: objects with ``parked``, None once they gave up, and ``unpark()``)
        self.slots_free = config.backpressure or max(1, config.backlog // config.workers)
        self.waiting: deque[Any] = deque()
        # set by workers/worker.py with --workers-max-requests: called for every request (count_request)
        self.on_request: Callable[[], None] | None = None
        # set by workers/worker.py with --metrics: workers/metrics.py WorkerMetrics, told of connections and responses
        self.metrics: Any = None
        # set by serving.py with --static-path-mount / --media-path-mount: static_files/files.py StaticFiles
        # (or Engines of several), asked by HTTPInterface.http before the app
        self.static: Any = None
        # set by serving.py with --compress / X-Accel-Redirect: app/filters.py ResponseFilters, wrapping the
        # channel of every request cycle (HTTPInterface.http)
        self.filters: Any = None
        # HTTP/1.1 hooks registered at start-up, so that h1.py imports neither WebSockets nor HTTP/2:
        # ``upgrades[b"websocket"](conn, head) -> bool`` (set by server/ws.py install, with --ws) and
        # ``upgrades[b"h2c"]`` (server/negotiate.py, --http auto) take over an Upgrade request (False:
        # serve it as plain HTTP); ``h2_preface(conn, data)`` (negotiate.py, --http auto) takes over a
        # connection whose first bytes are the HTTP/2 connection preface (prior knowledge).
        self.upgrades: dict[bytes, Callable[[Any, Any], bool]] = {}
        self.h2_preface: Callable[[Any, bytes], None] | None = None
        self.ssl = False
        self.shutting_down = False
        self.now = loop.time()
        self.date = b""
        self.default_headers = b""
        # HTTPS-only response fields, sent whatever the app set (one policy per server): --hsts and, with
        # --http3, the Alt-Svc advertisement; ``https_headers`` is their HTTP/1.1 form, part of default_headers
        self.https_fields: list[tuple[bytes, bytes]] = []
        self.https_headers = b""
        self._ticker: asyncio.TimerHandle | None = None
        self._update_date()

    def _update_date(self) -> None:
        self.date = b"date: " + formatdate(usegmt=True).encode("ascii") + b"\r\n"
        self.default_headers = self.date + (SERVER_HEADER if self.server_header else b"") + self.https_headers

    def set_https_fields(self, hsts: str | None, alt_svc: str | None = None) -> None:
        """The TLS listener's extra response fields: Strict-Transport-Security (--hsts) and Alt-Svc (--http3)."""
        fields = []
        if hsts:
            fields.append((b"strict-transport-security", hsts.encode("ascii")))
        if alt_svc:
            fields.append((b"alt-svc", alt_svc.encode("ascii")))
        self.https_fields = fields
        self.https_headers = b"".join(name + b": " + value + b"\r\n" for name, value in fields)
        self._update_date()

    def start(self) -> None:
        self._ticker = self.loop.call_later(1.0, self.tick)

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def tick(self) -> None:
        self.now = now = self.loop.time()
        self._update_date()
        for conn in list(self.connections):
            conn.check_timeout(now)
        self._ticker = self.loop.call_later(1.0, self.tick)

    def opened(self, conn: Any, transport: Any, count: bool = True) -> bool:
        """``conn`` serves ``transport`` from now on: it is tracked (timeouts, shutdown) and, with
        ``count``, counted (metrics); its ``client``, ``server_addr`` and ``peer_trusted`` are set.
        Returns True for a TLS connection."""
        client, server_addr, tls = transport_peers(transport)
        self.track(conn, client, server_addr, count)
        return tls

    def track(self, conn: Any, client: tuple[str, int] | None, server_addr: Any, count: bool = True) -> None:
        """``opened()`` for a connection whose peers are known without a transport (HTTP/3 over UDP)."""
        self.connections.add(conn)
        conn.client = client
        conn.server_addr = server_addr
        proxy = self.proxy
        conn.peer_trusted = proxy is not None and proxy.trusts(client[0] if client else None)
        if count and self.metrics is not None:
            self.metrics.connection_opened()

    def closed(self, conn: Any) -> None:
        """``conn`` is gone (its transport is closed): no longer tracked, no longer counted as open."""
        self.connections.discard(conn)
        if self.metrics is not None:
            self.metrics.connection_closed()

    def release_slot(self) -> None:
        """A request finished: hand its slot to the oldest waiting connection or stream, if any."""
        self.slots_free += 1
        if self.waiting:
            self.wake_waiting()

    def wake_waiting(self) -> None:
        waiting = self.waiting
        while waiting and self.slots_free > 0:
            conn = waiting.popleft()
            if conn.parked is not None:
                self.slots_free -= 1
                self.loop.call_soon(conn.unpark)
                return

    def count_request(self) -> None:
        self.requests += 1
        if self.on_request is not None:
            self.on_request()
