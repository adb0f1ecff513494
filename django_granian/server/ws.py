"""WebSocket over HTTP/1.1: the ``Upgrade: websocket`` takeover and the connection after it.

:func:`install` registers ``state.upgrades[b"websocket"]`` (only with ``--ws`` and an interface that
serves WebSockets). The handler validates the handshake (400, or 426 with
``Sec-WebSocket-Version: 13``), then hands the transport over (``transport.set_protocol``) to a
:class:`WSConnection`, which is the *ws channel* of one :class:`~django_granian.app.websocket.WebSocketSession`
(contract in ``app/websocket.py``). Requests with ``Upgrade: websocket`` but another method than GET
are served as ordinary HTTP. Everything else on the connection (keep-alive of normal requests)
is untouched: only a request that asks for the upgrade leaves the HTTP/1.1 protocol.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from ..app.websocket import start_websocket, supports_websocket
from ..futures import wake
from ..logs import AccessRecord, log_access
from ..protocol.http11 import RequestHead, status_line
from ..protocol.websocket import HandshakeError, accept_token, check_h1_handshake
from .state import ServerState

logger = logging.getLogger("django_granian.server")

_TOKEN_RE = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
_SKIP = frozenset({b"connection", b"transfer-encoding", b"upgrade", b"sec-websocket-accept"})


def install(state: ServerState) -> None:
    """Enable WebSockets over HTTP/1.1 Upgrade for this worker (called at start-up with ``--ws``)."""
    if supports_websocket(state.interface):
        state.upgrades[b"websocket"] = handle_upgrade


def handle_upgrade(conn: Any, head: RequestHead) -> bool:
    """``state.upgrades`` handler: True when the request was taken over (or refused)."""
    if head.method != "GET":
        return False  # not a WebSocket handshake: plain HTTP for the app
    try:
        key = check_h1_handshake(head.method, head.http_version, head.headers)
        if head.chunked or head.content_length:
            raise HandshakeError(400, "a WebSocket handshake must not have a body")
    except HandshakeError as exc:
        conn.keep_alive = False
        body = f"{exc.status} {exc.reason}\n".encode("latin-1", "replace")
        conn.respond(exc.status, [*exc.headers, (b"content-type", b"text/plain; charset=utf-8")], body)
        return True
    server = conn.server
    ws = WSConnection(conn, key, head)
    leftover, conn.buf = conn.buf, b""
    conn.phase = 3  # h1.CLOSED: the HTTP/1.1 protocol object is detached from the transport
    server.connections.discard(conn)
    server.connections.add(ws)
    transport = conn.transport
    transport.set_protocol(ws)
    if conn.reading_paused or conn.pressure_paused:
        transport.resume_reading()
    session = start_websocket(server, ws, head)
    if session is None or ws.closed:
        return True
    ws.session = session
    if leftover:
        session.data_received(leftover)
    return True


class WSConnection(asyncio.Protocol):
    """An HTTP/1.1 connection after ``Upgrade: websocket``: the ws channel of its session."""

    __slots__ = ("server", "loop", "transport", "session", "key", "client", "server_addr", "scheme",
                 "peer_trusted", "extensions", "writing_paused", "drain_waiter", "closed", "deny_left",
                 "deny_chunked", "head", "t0")

    def __init__(self, h1: Any, key: bytes, head: RequestHead) -> None:
        self.server: ServerState = h1.server
        self.loop = h1.loop
        self.transport: Any = h1.transport
        self.session: Any = None
        self.key = key
        self.client = h1.client
        self.server_addr = h1.server_addr
        self.scheme = h1.scheme
        self.peer_trusted = h1.peer_trusted
        self.extensions = getattr(h1, "extensions", None)
        self.writing_paused = h1.writing_paused
        self.drain_waiter: asyncio.Future | None = None
        self.closed = False
        self.deny_left = -1
        self.deny_chunked = False
        self.head = head  # for the access log line of the handshake
        self.t0 = h1.t0

    # -- asyncio.Protocol ---------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is not None:
            session.data_received(data)

    def eof_received(self) -> bool | None:
        return None  # the peer half-closed without a Close frame: close; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        server = self.server
        server.connections.discard(self)
        if server.metrics is not None:
            server.metrics.connection_closed()
        self._wake_drain()
        session = self.session
        if session is not None:
            session.connection_lost()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        wake(self.drain_waiter)
        self.drain_waiter = None

    # -- ServerState hooks --------------------------------------------------------------------------
    def check_timeout(self, now: float) -> None:
        pass  # pings and the close handshake are timed by the session

    def shutdown(self) -> None:
        session = self.session
        if session is not None:
            session.shutdown()
        elif not self.closed:
            self.close()

    def _log(self, status: int) -> None:
        server = self.server
        if server.metrics is not None:
            server.metrics.response(status)
        if server.access_log:
            head = self.head
            client = self.client
            log_access(server.access_fmt, AccessRecord(
                client[0] if client else "-", head.method, head.raw_path.decode("latin-1"), head.query,
                "HTTP/" + head.http_version, "wss" if self.scheme == "https" else "ws", status, 0, self.t0,
                head.headers))

    # -- the ws channel -----------------------------------------------------------------------------
    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        if self.closed:
            return
        parts = [_SWITCHING, b"sec-websocket-accept: ", accept_token(self.key), b"\r\n"]
        for name, value in headers:
            _check_field(name, value)
            if name.lower() not in _SKIP:
                parts += (name, b": ", value, b"\r\n")
        parts.append(self.server.default_headers)
        parts.append(b"\r\n")
        self.transport.write(b"".join(parts))
        self._log(101)

    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        """An HTTP response instead of the WebSocket; the connection closes after it."""
        if self.closed:
            return
        parts = [status_line(status)]
        length = -1
        for name, value in headers:
            _check_field(name, value)
            lname = name.lower()
            if lname == b"content-length":
                length = int(value)
            elif lname in (b"connection", b"transfer-encoding"):
                continue
            parts += (name, b": ", value, b"\r\n")
        if length < 0 and end:
            length = len(body)
            parts += (b"content-length: ", str(length).encode(), b"\r\n")
        elif length < 0:
            self.deny_chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        self.deny_left = length
        parts += (self.server.default_headers, b"connection: close\r\n\r\n")
        self.transport.write(b"".join(parts))
        self._log(status)
        if body or end:
            self.send_body(body, end)

    def send_body(self, body: bytes, end: bool) -> None:
        if self.closed:
            return
        if self.deny_chunked:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            self.transport.write(data + b"0\r\n\r\n" if end else data)
            return
        if self.deny_left >= 0:
            body = body[:self.deny_left]
            self.deny_left -= len(body)
        if body:
            self.transport.write(body)

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.transport.abort()

    def pause_reading(self) -> None:
        if not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed:
            self.transport.resume_reading()

    async def drain(self) -> None:
        if self.writing_paused and not self.closed:
            waiter = self.drain_waiter
            if waiter is None:
                waiter = self.drain_waiter = self.loop.create_future()
            await waiter


def _check_field(name: bytes, value: bytes) -> None:
    if type(name) is not bytes or type(value) is not bytes:
        raise TypeError("header names and values must be bytes")
    if not _TOKEN_RE.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if b"\r" in value or b"\n" in value or b"\x00" in value:
        raise ValueError("header values must not contain CR, LF or NUL")
