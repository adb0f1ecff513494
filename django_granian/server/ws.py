"""WebSocket transports: HTTP/1.1 ``Upgrade: websocket`` and HTTP/2 extended CONNECT (RFC 8441).

Both are the *ws channel* of one :class:`~django_granian.app.websocket.WebSocketSession` (the
contract is in ``app/websocket.py``); the session comes from the interface
(``state.interface.open_websocket(channel, head)``: ``--url-path-prefix``, proxy headers, the app).

HTTP/1.1: :func:`install` registers ``state.upgrades[b"websocket"]`` (only with ``--ws`` and an interface that
serves WebSockets). The handler validates the handshake (400, or 426 with
``Sec-WebSocket-Version: 13``), then hands the transport over (``transport.set_protocol``) to a
:class:`WSConnection`, which is the *ws channel* of one :class:`~django_granian.app.websocket.WebSocketSession`
(contract in ``app/websocket.py``). Requests with ``Upgrade: websocket`` but another method than GET
are served as ordinary HTTP. Everything else on the connection (keep-alive of normal requests)
is untouched: only a request that asks for the upgrade leaves the HTTP/1.1 protocol.

HTTP/2: :class:`H2WebSocket` is the stream of an accepted extended CONNECT (``server/h2.py`` validates
the handshake and feeds it); frames travel in its DATA, END_STREAM is the close.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..futures import wake
from ..logs import AccessRecord, log_access
from ..protocol.fields import field_lines
from ..protocol.h1response import header_block
from ..protocol.h2conn import CANCEL
from ..protocol.http2 import response_block
from ..protocol.http11 import RequestHead, status_line
from ..protocol.websocket import HandshakeError, accept_token, check_h1_handshake
from .channel import copy_peer
from .h2stream import Defaults, H2Stream
from .state import ServerState

if TYPE_CHECKING:
    from .h2 import HTTP2Protocol

logger = logging.getLogger("django_granian.server")

_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
_SKIP = frozenset({b"connection", b"transfer-encoding", b"upgrade", b"sec-websocket-accept"})


def install(state: ServerState) -> None:
    """Enable WebSockets over HTTP/1.1 Upgrade for this worker (called at start-up with ``--ws``)."""
    if state.interface.serves_websockets:
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
    session = server.interface.open_websocket(ws, head)
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
    client: tuple[str, int] | None  # these five: copy_peer(self, h1)
    server_addr: Any
    scheme: str
    peer_trusted: bool
    extensions: dict | None

    def __init__(self, h1: Any, key: bytes, head: RequestHead) -> None:
        self.server: ServerState = h1.server
        self.loop = h1.loop
        self.transport: Any = h1.transport
        self.session: Any = None
        self.key = key
        copy_peer(self, h1)
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
        self.server.closed(self)
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
        lines = field_lines([pair for pair in headers if pair[0].lower() not in _SKIP])
        self.transport.write(b"".join([_SWITCHING, b"sec-websocket-accept: ", accept_token(self.key), b"\r\n",
                                       *lines, self.server.default_headers, b"\r\n"]))
        self._log(101)

    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        """An HTTP response instead of the WebSocket; the connection closes after it."""
        if self.closed:
            return
        block, length, _, _, _ = header_block(headers)  # without connection / transfer-encoding: ours
        parts = [status_line(status), block]
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


class H2WebSocket(H2Stream):
    """An RFC 8441 extended CONNECT stream: the *ws channel* of a WebSocket session
    (contract in :mod:`django_granian.app.websocket`)."""

    __slots__ = ("session",)

    def __init__(self, conn: HTTP2Protocol, stream_id: int, head: RequestHead, remote_done: bool) -> None:
        super().__init__(conn, stream_id, head, remote_done)
        self.session: Any = None

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        if self.closed or self.local_done:
            return
        hdrs = [pair for pair in headers if pair[0].lower() not in _H2_SKIP]
        block, _, present = response_block(200, hdrs)
        self.resp_status = 200
        if not self.codec.send_headers(self.stream_id, block + Defaults.get(self.server)[present]):
            self._close()
            return
        self.conn.schedule_flush()

    def write(self, data: bytes) -> None:
        if not self.closed and not self.local_done and data:
            self._send_data(data, False)
            self.conn.schedule_flush()

    def close(self) -> None:
        if not self.closed and not self.local_done:
            if self.pending is not None:
                self.pending_end = True
                self.pump()
            else:
                self._send_data(b"", True)
            self.conn.schedule_flush()

    def abort(self, reason: str = "") -> None:  # type: ignore[override]
        if not self.closed:
            self.codec.reset_stream(self.stream_id, CANCEL)
            self._close()
            self.conn.schedule_flush()

    def pause_reading(self) -> None:
        self.pressure = True

    def resume_reading(self) -> None:
        self.body_pressure(False)


_H2_SKIP = frozenset({b"connection", b"upgrade", b"sec-websocket-accept", b"transfer-encoding"})
