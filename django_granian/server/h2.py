"""HTTP/2 connections: the asyncio side of the sans-IO :class:`~django_granian.protocol.h2conn.H2ServerConnection`.

:class:`HTTP2Protocol` is one connection and the *handler* of its sans-IO connection (the ``h2_*``
methods: what the peer sent). Each request is an :class:`~.h2stream.H2Stream` (its channel), each
RFC 8441 WebSocket an :class:`~.ws.H2WebSocket`; requests go through ``state.interface.http(stream,
head)`` exactly like HTTP/1.1 requests. How a connection becomes HTTP/2 (``--http 2``, ALPN ``h2``,
prior knowledge on ``--http auto``, ``Upgrade: h2c``) is in :mod:`.negotiate`.

Writes are coalesced: frames produced while handling received data are written once at the end of
``data_received``; frames produced by application tasks are written once per loop iteration.
Request data is acknowledged (WINDOW_UPDATE) as the request cycle takes it, so a slow reader holds
at most a window's worth; ``--http2-adaptive-window`` grows the windows from PING round trips.

Limits shared with HTTP/1.1: a request stream takes one of the worker's ``--backpressure`` slots
while its exchange lasts; with none free it waits (FIFO with HTTP/1.1 requests in
``ServerState.waiting``, its DATA kept and its stream window left closed) instead of failing.
``--request-body-timeout`` answers 408 (or RST_STREAM(CANCEL) once the response started) to a stream
whose body stopped arriving while the app waits for it with the window open.

One class, and so over 500 lines: the handler methods, flow control and the connection's timers
share the connection's state; the per-stream and WebSocket parts are in their own modules.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ..protocol.errors import ProtocolError
from ..protocol.h2conn import (
    ENHANCE_YOUR_CALM,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    H2ConnectionError,
    H2ServerConnection,
    HeaderBlock,
)
from ..protocol.http2 import TABLE_SIZE_ZERO, FloodGuard, check_trailers, connection_options, request_head
from .h2stream import H2Stream
from .state import ServerState
from .streams import StreamConnection, websockets_enabled
from .tls import tls_extension
from .ws import H2WebSocket

logger = logging.getLogger("django_granian.server")

_MAX_WINDOW = 16 * 1024 * 1024  # adaptive window ceiling
LINGER = 1.0  # seconds input is drained after a connection error before the socket is closed
_BASE_EXTENSIONS: dict = {"http.response.trailers": {}, "http.response.early_hint": {}, "http.response.pathsend": {}}


class HTTP2Protocol(StreamConnection, asyncio.Protocol):
    """One HTTP/2 connection: the asyncio side of :class:`~..protocol.h2conn.H2ServerConnection`,
    whose *handler* it is (the ``h2_*`` methods)."""

    __slots__ = (
        "server", "loop", "conn", "transport", "client", "server_addr", "scheme", "peer_trusted", "extensions",
        "streams", "blocked", "in_receive", "flush_pending", "transport_paused", "send_buffer_limit",
        "guard", "closed", "goaway_sent", "idle_since", "last_recv", "ping_sent", "ping_interval", "ping_timeout",
        "adaptive", "bdp_ping", "bdp_bytes", "bdp_window", "max_body", "started", "access_log",
    )

    websocket_class = H2WebSocket

    def __init__(self, server: ServerState) -> None:
        config = server.config
        self.server = server
        self.loop = server.loop
        self.conn = H2ServerConnection(self, **connection_options(config, websockets_enabled(server)))
        self.conn.header_prefix = TABLE_SIZE_ZERO
        self.transport: Any = None
        self.client: tuple[str, int] | None = None
        self.server_addr: tuple[str, int] | None = None
        self.scheme = "http"
        self.peer_trusted = False
        self.extensions: dict = _BASE_EXTENSIONS
        self.streams: dict[int, H2Stream] = {}
        self.blocked: dict[int, H2Stream] = {}
        self.in_receive = False
        self.flush_pending = False
        self.transport_paused = False
        self.send_buffer_limit = config.http2_max_send_buffer_size
        self.guard = FloodGuard(server.now, reset_burst=max(200, 2 * config.http2_max_concurrent_streams))
        self.closed = False
        self.goaway_sent = False
        self.idle_since = self.last_recv = server.now
        self.ping_sent: float | None = None
        interval = config.http2_keep_alive_interval
        self.ping_interval = interval / 1000.0 if interval else None
        self.ping_timeout = float(config.http2_keep_alive_timeout)
        self.adaptive = config.http2_adaptive_window
        self.bdp_ping: bytes | None = None
        self.bdp_bytes = 0
        self.bdp_window = config.http2_initial_stream_window_size
        self.max_body = server.limits.max_body
        self.started = False
        self.access_log = server.access_log

    # -- setting up -------------------------------------------------------------------------------
    def _attach(self, transport: Any, count: bool) -> None:
        """Serve ``transport`` (``count``: a new connection, not one taken over from HTTP/1.1)."""
        self.transport = transport
        if self.server.opened(self, transport, count):
            self.scheme = "https"
            ext = tls_extension(transport)
            if ext is not None:
                self.extensions = {**_BASE_EXTENSIONS, "tls": ext}

    def _start(self) -> None:
        """Send our SETTINGS (the server connection preface) and open the connection window."""
        if not self.started:
            self.started = True
            self.conn.initiate()

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self._attach(transport, True)
        self._start()
        self._flush()

    def take_over(self, h1: Any, data: bytes) -> None:
        """Continue a connection accepted as HTTP/1.1 whose first bytes are the HTTP/2 preface."""
        transport = h1.transport
        self.server.connections.discard(h1)
        self._attach(transport, False)
        transport.set_protocol(self)
        self._start()
        self.data_received(data)

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.closed(self)
        streams = list(self.streams.values())
        self.streams.clear()
        self.blocked.clear()
        for stream in streams:
            self._gone(stream)

    def pause_writing(self) -> None:
        self.transport_paused = True

    def resume_writing(self) -> None:
        self.transport_paused = False
        for stream in list(self.streams.values()):
            if stream.waiter is not None and not stream.writing_paused:
                stream._wake()

    def eof_received(self) -> bool | None:
        return None

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_recv = self.server.now
        self.in_receive = True
        try:
            self.conn.receive(data)
        except H2ConnectionError as exc:
            logger.debug("HTTP/2 connection error from %s: %s", self.client, exc.reason)
            self.in_receive = False
            self._fail()
            return
        finally:
            self.in_receive = False
        self._flush()

    # -- what the connection reports (the handler of H2ServerConnection) ----------------------------
    def h2_request(self, sid: int, block: HeaderBlock, end: bool) -> None:
        if self.goaway_sent:
            self.conn.reset_stream(sid, REFUSED_STREAM)
            return
        # the request head derived from a memoised header block is memoised with it
        memo = block.memo
        if memo is None:
            memo = block.memo = [None, None]
        head = memo[end]
        if head is None:
            try:
                head = request_head(block.headers, end)
                head.shared = True  # handed to every request with the same header block
            except ProtocolError:
                head = False
            memo[end] = head
        if head is False:
            self.conn.reset_stream(sid, PROTOCOL_ERROR)
            self._control()
            return
        self.admit(H2Stream(self, sid, head, end), head)

    def h2_data(self, sid: int, data: bytes, size: int, end: bool) -> None:
        stream = self.streams.get(sid)
        if self.adaptive:
            self._bdp_sample(size)
        if stream is None:
            self.conn.ack(sid, size)
            return
        cycle = stream.cycle
        if cycle is None:
            if type(stream) is H2WebSocket:
                self._on_ws_data(stream, data, size)  # type: ignore[arg-type]
            elif stream.parked is not None:
                # waiting for a --backpressure slot: keep the data; give back the connection's window
                # (other streams must not starve), not the stream's (it bounds what we keep)
                if data:
                    stream.parked.append(data)
                if size:
                    self.conn.ack(0, size)
                    stream.held += size
            else:
                self.conn.ack(sid, size)
        elif stream.completed:
            self.conn.ack(sid, size)
        else:
            max_body = self.max_body
            if max_body:
                stream.received += len(data)
                if stream.received > max_body:
                    self.conn.ack(sid, size)
                    self._too_large(stream, cycle)
                    return
            stream.since = self.server.now
            if data:
                cycle.feed_body(data)
            if size:
                if stream.pressure:
                    stream.unacked += size
                else:
                    self.conn.ack(sid, size)
        if end:
            self.on_end(stream)

    def _on_ws_data(self, ws: H2WebSocket, data: bytes, size: int) -> None:
        session = ws.session
        if session is not None and data and not ws.closed:
            session.data_received(data)
        if size:
            if ws.pressure:
                ws.unacked += size
            else:
                self.conn.ack(ws.stream_id, size)

    def h2_trailers(self, sid: int, headers: list) -> None:
        """Request trailers have no place in ASGI/WSGI: validated, then dropped."""
        stream = self.streams.get(sid)
        if stream is None:
            return
        try:
            check_trailers(headers)
        except ProtocolError:
            self.conn.reset_stream(sid, PROTOCOL_ERROR)
            self._gone(stream)
            return
        self.on_end(stream)

    def h2_window(self, sid: int) -> None:
        blocked = self.blocked
        if not blocked:
            return
        if sid == 0:
            streams = list(blocked.values())
            blocked.clear()
            for stream in streams:
                stream.pump()
        else:
            one = blocked.pop(sid, None)
            if one is not None:
                one.pump()

    def h2_reset(self, sid: int, code: int, remote: bool) -> None:
        stream = self.streams.get(sid)
        if stream is not None:
            self._gone(stream)
        if remote and not self.guard.reset(self.server.now):
            logger.warning("HTTP/2 client %s reset too many streams (rapid reset); closing the connection",
                           self.client)
            self._fail(ENHANCE_YOUR_CALM)

    def h2_settings(self, changed: dict[int, int]) -> None:
        if INITIAL_WINDOW_SIZE in changed or MAX_FRAME_SIZE in changed:
            self.h2_window(0)

    def h2_goaway(self, code: int, last_stream_id: int) -> None:
        """The client is going away: no new streams; finish the open ones, then close."""
        self.goaway_sent = True
        if not self.streams:
            self._close()

    def h2_control(self) -> None:
        self._control()

    def _control(self) -> None:
        if not self.guard.control(self.server.now):
            logger.warning("HTTP/2 client %s sent too many control frames; closing the connection", self.client)
            self._fail(ENHANCE_YOUR_CALM)

    # -- flow control -----------------------------------------------------------------------------
    def _bdp_sample(self, size: int) -> None:
        """--http2-adaptive-window: estimate the bandwidth-delay product with a PING per round trip
        and grow the windows when the peer fills them within one round trip (like hyper)."""
        self.bdp_bytes += size
        if self.bdp_ping is None and self.bdp_window < _MAX_WINDOW:
            self.bdp_ping = b"bdp" + os.urandom(5)
            self.bdp_bytes = size
            self.conn.ping(self.bdp_ping)

    def _bdp_done(self) -> None:
        self.bdp_ping = None
        window = self.bdp_window
        if self.bdp_bytes * 3 >= window * 2 and window < _MAX_WINDOW:
            new = min(window * 2, _MAX_WINDOW)
            self.bdp_window = new
            conn = self.conn
            conn.update_initial_window(new)
            extra = new - conn.recv_max
            if extra > 0:
                conn.increment_connection_window(extra)
            logger.debug("HTTP/2 adaptive window for %s: %d bytes", self.client, new)
        self.bdp_bytes = 0

    def h2_ping_ack(self, data: bytes) -> None:
        if data == self.bdp_ping:
            self._bdp_done()
        else:
            self.ping_sent = None

    # -- used by streams --------------------------------------------------------------------------
    def stream_done(self, stream: H2Stream) -> None:
        if stream.remote_done and stream.local_done:
            sid = stream.stream_id
            if self.streams.pop(sid, None) is not None:
                if self.blocked:
                    self.blocked.pop(sid, None)
                if not self.streams:
                    self.idle_since = self.server.now
                    if self.goaway_sent:
                        self.schedule_flush()
                        self.loop.call_soon(self._close_if_idle)

    def schedule_flush(self) -> None:
        if not self.in_receive and not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_pending = False
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    # -- closing ----------------------------------------------------------------------------------
    def _fail(self, code: int | None = None) -> None:
        """Close after a connection error (the connection queued its GOAWAY, or we send one with ``code``)."""
        if self.closed:
            return
        if code is not None:
            self.conn.goaway(code)
        self._flush()
        # Lingering close: closing with unread input would make the kernel send RST, and the peer
        # could lose our GOAWAY. Half-close, ignore further input, and close for good shortly.
        self.closed = True
        transport = self.transport
        try:
            if transport.can_write_eof():
                transport.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            pass
        self.loop.call_later(LINGER, transport.close)

    def _goaway(self, code: int) -> None:
        """GOAWAY with the highest stream id opened so far: the streams already open can still finish."""
        if self.goaway_sent and code == 0:
            return
        self.goaway_sent = True
        self.conn.goaway(code)
        self._flush()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def _close_if_idle(self) -> None:
        if not self.streams and not self.closed:
            self._flush()
            self._close()

    def shutdown(self) -> None:
        """Graceful shutdown: GOAWAY now; close once the open streams are done."""
        if self.closed:
            return
        self._goaway(NO_ERROR)
        for stream in list(self.streams.values()):
            if type(stream) is H2WebSocket and stream.session is not None:
                stream.session.shutdown()  # Close 1001
        if not self.streams:
            self._close()
        else:
            self._flush()

    def check_timeout(self, now: float) -> None:
        if self.closed:
            return
        if self.ping_interval is not None:
            if self.ping_sent is not None:
                if now - self.ping_sent > self.ping_timeout:
                    logger.debug("HTTP/2 client %s did not answer PING; closing", self.client)
                    self._close()
                    return
            elif now - self.last_recv >= self.ping_interval:
                self.ping_sent = now
                self.conn.ping(b"keepaliv")
                self._flush()
        if not self.streams:
            if now - max(self.idle_since, self.last_recv) > self.server.keep_alive_timeout:
                self._goaway(NO_ERROR)
                self._close()
            return
        if self._cancel_stalled_bodies(now):
            self._flush()


# -- entry points ---------------------------------------------------------------------------------
