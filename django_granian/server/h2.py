"""HTTP/2 connections (h2): an asyncio Protocol per connection and a small *channel* per stream.

Each stream is an :class:`H2Stream` with the same channel methods as the HTTP/1.1 connection
(``send_head``/``send_body``/``send_trailers``/``send_informational``/``drain``/``want_body``/
``body_pressure``/``response_complete``/``abort``/``respond``/``send_file_response``), and its
request goes through ``state.interface.http(stream, head)`` exactly like an HTTP/1.1 request, so
ASGI, WSGI, RSGI and static files work unchanged.

Writes are coalesced: frames produced while handling received data are written once at the end of
``data_received``; frames produced by application tasks are written once per loop iteration.
Flow control both ways: response data beyond the peer's windows waits in a per-stream queue
(``--http2-max-send-buffer-size`` makes the app's ``send`` wait); request data is acknowledged
(WINDOW_UPDATE) as the request cycle takes it, so a slow reader holds at most a window's worth.

Limits shared with HTTP/1.1: a request stream takes one of the worker's ``--backpressure`` slots
while its exchange lasts; with none free it waits (FIFO with HTTP/1.1 requests in
``ServerState.waiting``, its DATA kept and its stream window left closed) instead of failing.
``--request-body-timeout`` answers 408 (or RST_STREAM(CANCEL) once the response started) to a stream
whose body stopped arriving while the app waits for it with the window open.

Entry points: :class:`HTTP2Protocol` (``--http 2``, and ALPN ``h2``), :func:`preface_takeover`
(prior knowledge on a ``--http auto`` connection), :func:`h2c_upgrade` (``Upgrade: h2c``) and
:func:`protocol_factory` (what the server hands to ``loop.create_server``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import Any, Callable

from ..futures import wake
from ..logs import AccessRecord, log_access
from ..protocol.errors import ProtocolError
from ..protocol.h2conn import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    INITIAL_WINDOW_SIZE,
    INTERNAL_ERROR,
    MAX_FRAME_SIZE,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    H2ConnectionError,
    H2ServerConnection,
    HeaderBlock,
)
from ..protocol.http2 import (
    TABLE_SIZE_ZERO,
    FloodGuard,
    ResponseHeaderError,
    check_trailers,
    connection_options,
    encode_field,
    encode_fields,
    informational_headers,
    request_head,
    response_block,
    trailer_headers,
)
from ..protocol.http11 import NO_BODY_STATUS, RequestHead
from .h1 import ServerResponse
from .sockets import transport_peers
from .state import ServerState

logger = logging.getLogger("django_granian.server")

_SERVER_PAIR = (b"server", b"django-granian")
_MAX_WINDOW = 16 * 1024 * 1024  # adaptive window ceiling
LINGER = 1.0  # seconds input is drained after a connection error before the socket is closed
_BASE_EXTENSIONS: dict = {"http.response.trailers": {}, "http.response.early_hint": {}, "http.response.pathsend": {}}
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class _Defaults:
    """The encoded ``date``/``server`` response fields, rebuilt when the per-second Date changes:
    ``blocks[mask]`` holds the ones an app did not set (mask bit 1: it set ``date``, 2: ``server``)."""

    date = b""
    blocks: list[bytes] = [b"", b"", b"", b""]

    @classmethod
    def get(cls, server: ServerState) -> list[bytes]:
        date = server.date
        if date is not cls.date:
            cls.date = date
            date_field = encode_field(b"date", date[6:].strip())
            server_field = encode_field(*_SERVER_PAIR) if server.server_header else b""
            hsts = server.hsts  # --hsts: sent whatever the app set (one policy per server)
            hsts_field = encode_field(b"strict-transport-security", hsts[27:-2]) if hsts else b""
            cls.blocks = [date_field + server_field + hsts_field, server_field + hsts_field, date_field + hsts_field,
                          hsts_field]
        return cls.blocks


def _length_field(length: int) -> bytes:
    return encode_field(b"content-length", b"%d" % length)


_SERVER_RESPONSE = ServerResponse()


class H2Stream:
    """One request/response exchange: the channel of its request cycle."""

    __slots__ = (
        "conn", "codec", "stream_id", "head", "cycle", "client", "server_addr", "scheme", "peer_trusted",
        "extensions", "transport", "server", "pending", "pending_bytes", "pending_end", "trailers", "resp_status",
        "resp_bytes", "resp_left", "head_only", "local_done", "remote_done", "completed", "closed", "waiter",
        "pressure", "unacked", "received", "t0", "continue_sent", "no_body", "parked", "counted", "held", "since",
        "wants",
    )

    def __init__(self, conn: HTTP2Protocol, stream_id: int, head: RequestHead, remote_done: bool) -> None:
        self.conn = conn
        self.codec = conn.conn
        self.stream_id = stream_id
        self.head = head
        self.cycle: Any = None
        self.client = conn.client
        self.server_addr = conn.server_addr
        self.scheme = conn.scheme
        self.peer_trusted = conn.peer_trusted
        self.extensions = conn.extensions
        self.transport = conn.transport
        self.server = conn.server
        self.pending: deque[memoryview] | None = None
        self.pending_bytes = 0
        self.pending_end = False
        self.trailers: bytes | None = None
        self.resp_status = 0
        self.resp_bytes = 0
        self.resp_left = -1
        self.head_only = self.no_body = head.method == "HEAD"
        self.local_done = False
        self.remote_done = remote_done
        self.completed = False
        self.closed = False
        self.waiter: asyncio.Future | None = None
        self.pressure = False
        self.unacked = 0
        self.received = 0
        self.t0 = 0.0
        self.continue_sent = False
        self.parked: list[bytes | None] | None = None  # waiting for a --backpressure slot: its body so far
        self.counted = False  # holds a --backpressure slot
        self.held = 0  # flow-controlled bytes whose connection window was given back, but not the stream's
        self.since = 0.0  # --request-body-timeout: the head or the last DATA frame
        self.wants = False  # the request cycle has asked for the body

    # -- state ------------------------------------------------------------------------------------
    @property
    def writing_paused(self) -> bool:
        return self.pending_bytes > self.conn.send_buffer_limit or self.conn.transport_paused

    def _wake(self) -> None:
        wake(self.waiter)
        self.waiter = None

    def _finish_local(self) -> None:
        """END_STREAM (or trailers) has been sent."""
        self.local_done = True
        self.pending = None
        if self.waiter is not None:
            self._wake()
        if not self.remote_done:
            # the response is complete but the request body is not: stop it (RFC 9113 section 8.1)
            self.remote_done = True
            self.codec.reset_stream(self.stream_id, NO_ERROR)
        self.conn.stream_done(self)

    def _close(self) -> None:
        """The stream is gone (reset by either side, or the connection was lost)."""
        if self.closed:
            return
        self.closed = True
        self.local_done = self.remote_done = True
        self.pending = None
        self.pending_bytes = 0
        self.parked = None  # a parked stream gives up its place in ServerState.waiting
        self._release_slot()
        self._wake()
        self.conn.stream_done(self)

    def _release_slot(self) -> None:
        if self.counted:
            self.counted = False
            self.server.release_slot()

    def _exchange_done(self) -> None:
        """The stream's response is over (sent by the app or by the server for it): log it, count it."""
        server = self.server
        if server.access_log:
            self._log_access()
        if server.metrics is not None:
            server.metrics.response(self.resp_status)

    def unpark(self) -> None:
        """Called by ServerState when a --backpressure slot is free for this parked stream: dispatch
        it, then hand its cycle the body received while it waited."""
        server = self.server
        server.slots_free += 1  # the slot reserved for us: _dispatch takes it again
        buffered = self.parked
        if buffered is None or self.closed:
            server.wake_waiting()  # gone meanwhile: give the slot to the next one
            return
        self.parked = None
        conn = self.conn
        conn.dispatch(self, self.head)
        ended = False
        for data in buffered:
            if data is None:
                ended = True
                break
            cycle = self.cycle
            if cycle is not None and not self.completed and not self.closed:
                if not conn.feed(self, cycle, data):
                    break
        if ended and not self.closed:
            conn._on_end(self)
        if self.held and not self.pressure:
            n, self.held = self.held, 0
            self.codec.ack_stream(self.stream_id, n)
        conn.schedule_flush()

    # -- the channel ------------------------------------------------------------------------------
    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        if self.closed or self.local_done:
            return
        try:
            block, content_length, present = response_block(status, headers)
        except ResponseHeaderError as exc:
            raise ValueError(str(exc)) from None
        if present != 3:
            block += _Defaults.get(self.server)[present]
        self.resp_status = status
        if self.no_body or status in NO_BODY_STATUS:
            self.no_body = True
            if end and content_length < 0 and self.head_only and status not in NO_BODY_STATUS:
                block += _length_field(len(body))
            body = b""
        elif content_length >= 0:
            self.resp_left = content_length
            if body:
                body = self._clip(body)
        elif end:
            block += _length_field(len(body))
        sent = self.codec.send_response(self.stream_id, block, body, end)
        if sent < 0:
            self._close()
            return
        self.resp_bytes = sent
        if sent == len(body):
            if end:
                self._finish_local()
        else:
            self.resp_bytes = 0
            self._send_data(body, end)
        if not self.conn.in_receive:
            self.conn.schedule_flush()

    def send_body(self, body: bytes, end: bool) -> None:
        if self.closed or self.local_done:
            return
        if self.no_body:
            body = b""
        elif body and self.resp_left >= 0:
            body = self._clip(body)
        if body or end:
            self._send_data(body, end)
            if not self.conn.in_receive:
                self.conn.schedule_flush()

    def _clip(self, body: bytes) -> bytes:
        left = self.resp_left
        if len(body) > left:
            logger.error("ASGI/WSGI app sent more body than its Content-Length; truncating")
            body = body[:left]
        self.resp_left = left - len(body)
        return body

    def _send_data(self, body: bytes, end: bool) -> None:
        self.resp_bytes += len(body)
        pending = self.pending
        if pending is not None:
            if body:
                pending.append(memoryview(body))
                self.pending_bytes += len(body)
            self.pending_end = end
            return
        codec = self.codec
        sid = self.stream_id
        size = len(body)
        if size <= codec.max_send_frame and size <= codec.window(sid):
            if not codec.send_data(sid, body, end):
                self._close()
                return
            if end:
                self._finish_local()
            return
        self.pending = deque((memoryview(body),))
        self.pending_bytes = size
        self.pending_end = end
        self.pump()

    def pump(self) -> None:
        """Send queued data as far as the flow-control windows allow."""
        pending = self.pending
        if pending is None or self.closed:
            return
        codec = self.codec
        sid = self.stream_id
        if not codec.is_open(sid):
            self._close()
            return
        while pending:
            window = codec.window(sid)
            if window <= 0:
                self.conn.blocked[sid] = self
                break
            chunk = pending[0]
            size = min(window, codec.max_send_frame, len(chunk))
            if size < len(chunk):
                codec.send_data(sid, chunk[:size])
                pending[0] = chunk[size:]
            else:
                pending.popleft()
                codec.send_data(sid, chunk, end=not pending and self.pending_end and self.trailers is None)
            self.pending_bytes -= size
        if not pending:
            if self.pending_end:
                trailers = self.trailers
                if trailers is not None:
                    codec.send_headers(sid, trailers, end=True)
                self._finish_local()
            else:
                self.pending = None
        self.conn.schedule_flush()
        if self.waiter is not None and not self.writing_paused:
            self._wake()

    def send_trailers(self, headers: Any) -> None:
        if self.closed or self.local_done:
            return
        try:
            trailers = encode_fields(trailer_headers(headers))
        except ResponseHeaderError as exc:
            raise ValueError(str(exc)) from None
        if self.pending is not None:
            self.trailers = trailers if trailers else None
            self.pending_end = True
            return
        codec = self.codec
        sent = codec.send_headers(self.stream_id, trailers, end=True) if trailers else \
            codec.send_data(self.stream_id, b"", end=True)
        if not sent:
            self._close()
            return
        self._finish_local()
        self.conn.schedule_flush()

    def send_informational(self, status: int, headers: Any) -> None:
        if self.closed or self.local_done or self.resp_status:
            return
        try:
            block = encode_fields(informational_headers(status, headers))
        except ResponseHeaderError as exc:
            raise ValueError(str(exc)) from None
        if not self.codec.send_headers(self.stream_id, block):
            self._close()
            return
        self.conn.schedule_flush()

    async def drain(self) -> None:
        if self.closed or not self.writing_paused:
            return
        waiter = self.waiter
        if waiter is None:
            waiter = self.waiter = self.conn.loop.create_future()
        await waiter

    def want_body(self, cycle: Any) -> None:
        self.wants = True
        if self.head.expect_continue and not self.continue_sent and not self.resp_status and not self.closed:
            self.continue_sent = True
            self.send_informational(100, ())

    def body_pressure(self, high: bool) -> None:
        if high:
            self.pressure = True
        elif self.pressure:
            self.pressure = False
            self.since = self.server.now  # the window reopens: the client gets a full body timeout
            if self.unacked or self.held:
                self._ack_all()
                self.conn.schedule_flush()

    def _ack_all(self) -> None:
        if self.unacked:
            n, self.unacked = self.unacked, 0
            self.codec.ack(self.stream_id, n)
        if self.held:
            n, self.held = self.held, 0
            self.codec.ack_stream(self.stream_id, n)

    def response_complete(self, cycle: Any) -> None:
        if cycle is not self.cycle:
            return
        self.cycle = None
        self.completed = True
        self._release_slot()
        self._exchange_done()
        if not self.local_done and not self.closed:
            # the cycle is done but END_STREAM was never sent (e.g. a trailers-less end): end it
            if self.pending is not None:
                self.pending_end = True
            else:
                self._send_data(b"", True)
                self.conn.schedule_flush()
        if self.unacked or self.held:
            self._ack_all()

    def abort(self, reason: str) -> None:
        logger.debug("resetting HTTP/2 stream %d from %s: %s", self.stream_id, self.client, reason)
        cycle = self.cycle
        if cycle is not None:
            self.cycle = None
            if self.server.access_log:
                self._log_access()
        if not self.closed:
            self.codec.reset_stream(self.stream_id, INTERNAL_ERROR)
            self._close()
            self.conn.schedule_flush()

    def respond(self, status: int, headers: Any, body: bytes) -> None:
        """A complete response produced by the server itself, not the app."""
        self.cycle = marker = _SERVER_RESPONSE
        self.send_head(status, headers, body, True)
        self.response_complete(marker)

    async def send_file_response(self, status: int, headers: Any, path: str) -> None:
        """``http.response.pathsend`` and static files: chunked reads through ``send_body``/``drain``
        (so HTTP/2 flow control applies), shared with TLS HTTP/1.1 in :mod:`.sendfile`."""
        from .sendfile import send_file_response

        await send_file_response(self, status, headers, path)

    def _log_access(self) -> None:
        head = self.head
        client = self.client
        record = AccessRecord(client[0] if client else "-", head.method, head.raw_path.decode("latin-1"),
                              head.query, "HTTP/2", self.scheme, self.resp_status, self.resp_bytes, self.t0,
                              head.headers)
        log_access(self.server.access_fmt, record)


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
        hdrs = [pair for pair in headers if pair[0].lower() not in _WS_SKIP]
        try:
            block, _, present = response_block(200, hdrs)
        except ResponseHeaderError as exc:
            raise ValueError(str(exc)) from None
        self.resp_status = 200
        if not self.codec.send_headers(self.stream_id, block + _Defaults.get(self.server)[present]):
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


_WS_SKIP = frozenset({b"connection", b"upgrade", b"sec-websocket-accept", b"transfer-encoding"})


class HTTP2Protocol(asyncio.Protocol):
    """One HTTP/2 connection: the asyncio side of :class:`~..protocol.h2conn.H2ServerConnection`,
    whose *handler* it is (the ``h2_*`` methods)."""

    __slots__ = (
        "server", "loop", "conn", "transport", "client", "server_addr", "scheme", "peer_trusted", "extensions",
        "streams", "blocked", "in_receive", "flush_pending", "transport_paused", "send_buffer_limit",
        "guard", "closed", "goaway_sent", "idle_since", "last_recv", "ping_sent", "ping_interval", "ping_timeout",
        "adaptive", "bdp_ping", "bdp_bytes", "bdp_window", "max_body", "started", "access_log",
    )

    def __init__(self, server: ServerState) -> None:
        config = server.config
        self.server = server
        self.loop = server.loop
        self.conn = H2ServerConnection(self, **connection_options(config, _websockets_enabled(server)))
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
    def _attach(self, transport: Any) -> None:
        self.transport = transport
        server = self.server
        server.connections.add(self)
        self.client, self.server_addr, tls = transport_peers(transport)
        if tls:
            self.scheme = "https"
            from .tls import tls_extension

            ext = tls_extension(transport)
            if ext is not None:
                self.extensions = {**_BASE_EXTENSIONS, "tls": ext}
        proxy = server.proxy
        self.peer_trusted = proxy is not None and proxy.trusts(self.client[0] if self.client else None)

    def _start(self) -> None:
        """Send our SETTINGS (the server connection preface) and open the connection window."""
        if not self.started:
            self.started = True
            self.conn.initiate()

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self._attach(transport)
        if self.server.metrics is not None:
            self.server.metrics.connection_opened()
        self._start()
        self._flush()

    def take_over(self, h1: Any, data: bytes) -> None:
        """Continue a connection accepted as HTTP/1.1 whose first bytes are the HTTP/2 preface."""
        transport = h1.transport
        self.server.connections.discard(h1)
        self._attach(transport)
        self.scheme, self.client, self.server_addr = h1.scheme, h1.client, h1.server_addr
        transport.set_protocol(self)
        self._start()
        self.data_received(data)

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        server = self.server
        server.connections.discard(self)
        if server.metrics is not None:
            server.metrics.connection_closed()
        streams = list(self.streams.values())
        self.streams.clear()
        self.blocked.clear()
        for stream in streams:
            cycle = stream.cycle
            stream._close()
            if cycle is not None:
                stream.cycle = None
                cycle.disconnect()
            elif type(stream) is H2WebSocket and stream.session is not None:
                stream.session.connection_lost()

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
        server = self.server
        stream = H2Stream(self, sid, head, end)
        self.streams[sid] = stream
        if self.access_log:
            stream.t0 = time.perf_counter()
        if head.method == "CONNECT":
            self._on_connect(stream, head)
            return
        if self.max_body and head.content_length > self.max_body:
            stream.respond(413, _TEXT, b"Request body too large\n")
            return
        if server.slots_free <= 0:
            # --backpressure: every slot of this worker is busy; wait (not fail) for one, in arrival
            # order with HTTP/1.1 requests. Its DATA is kept, and its window stays closed, meanwhile.
            stream.parked = []
            server.waiting.append(stream)
            return
        self.dispatch(stream, head)

    def dispatch(self, stream: H2Stream, head: RequestHead) -> None:
        """Start the request cycle of ``stream``, which takes a --backpressure slot."""
        server = self.server
        server.count_request()
        server.slots_free -= 1
        stream.counted = True
        stream.since = server.now
        cycle = server.interface.http(stream, head)
        if cycle is None or stream.closed:  # answered by the server itself (prefix 404, static file, ...)
            if stream.cycle is None:
                stream._release_slot()
            return
        stream.cycle = cycle
        cycle.run()

    def feed(self, stream: H2Stream, cycle: Any, data: bytes) -> bool:
        """Request body bytes for the cycle of ``stream``; False when they went over
        --limit-request-body (answered 413, or reset, and the cycle is told the client is gone)."""
        max_body = self.max_body
        if max_body:
            stream.received += len(data)
            if stream.received > max_body:
                self._too_large(stream, cycle)
                return False
        stream.since = self.server.now
        if data:
            cycle.feed_body(data)
        return True

    def _too_large(self, stream: H2Stream, cycle: Any) -> None:
        if not stream.resp_status:
            stream.send_head(413, _TEXT, b"Request body too large\n", True)
        stream.cycle = None
        stream._exchange_done()
        if not stream.closed:
            self.conn.reset_stream(stream.stream_id, CANCEL)
            stream._close()
        cycle.disconnect()

    def _on_connect(self, stream: H2Stream, head: RequestHead) -> None:
        """CONNECT: RFC 8441 extended CONNECT with ``:protocol websocket`` starts a WebSocket."""
        if head.upgrade == b"websocket" and _websockets_enabled(self.server):
            from ..app.websocket import start_websocket
            from ..protocol.websocket import HandshakeError, check_h2_handshake

            try:
                check_h2_handshake(head.method, "websocket", head.headers)
            except HandshakeError as exc:
                body = f"{exc.status} {exc.reason}\n".encode("latin-1", "replace")
                stream.respond(exc.status, [*exc.headers, *_TEXT], body)
                return
            ws = H2WebSocket(self, stream.stream_id, head, stream.remote_done)
            self.streams[ws.stream_id] = ws
            session = start_websocket(self.server, ws, head)
            if session is not None and not ws.closed:
                ws.session = session
            return
        stream.respond(501 if head.upgrade is not None else 405, _TEXT, b"CONNECT is not supported\n")

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
            self._on_end(stream)

    def _on_ws_data(self, ws: H2WebSocket, data: bytes, size: int) -> None:
        session = ws.session
        if session is not None and data and not ws.closed:
            session.data_received(data)
        if size:
            if ws.pressure:
                ws.unacked += size
            else:
                self.conn.ack(ws.stream_id, size)

    def _on_end(self, stream: H2Stream) -> None:
        if stream.remote_done:
            return
        if stream.parked is not None:
            stream.parked.append(None)  # replayed when the stream is dispatched
            return
        stream.remote_done = True
        if type(stream) is H2WebSocket:
            session = stream.session  # the peer ended its side (RFC 8441: like a TCP FIN)
            if session is not None:
                session.connection_lost()
        else:
            cycle = stream.cycle
            if cycle is not None:
                cycle.end_body()
        if stream.local_done:
            self.stream_done(stream)

    def h2_trailers(self, sid: int, headers: list) -> None:
        """Request trailers have no place in ASGI/WSGI: validated, then dropped."""
        stream = self.streams.get(sid)
        if stream is None:
            return
        try:
            check_trailers(headers)
        except ProtocolError:
            self.conn.reset_stream(sid, PROTOCOL_ERROR)
            self._disconnect(stream)
            return
        self._on_end(stream)

    def _disconnect(self, stream: H2Stream) -> None:
        cycle = stream.cycle
        stream.cycle = None
        stream._close()
        if cycle is not None:
            cycle.disconnect()
        elif type(stream) is H2WebSocket and stream.session is not None:
            stream.session.connection_lost()

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
            self._disconnect(stream)
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
        timeout = self.server.body_timeout
        stalled = [stream for stream in self.streams.values()
                   if stream.wants and not stream.remote_done and not stream.pressure and now - stream.since > timeout
                   and stream.cycle is not None and not stream.completed
                   and not (stream.head.expect_continue and not stream.continue_sent)]
        if stalled:
            for stream in stalled:
                self._body_stalled(stream, now)
            self._flush()

    def _body_stalled(self, stream: H2Stream, now: float) -> None:
        """--request-body-timeout: the app is waiting for a request body that stopped arriving although
        its window is open (a paused window, an app that never asked, or an unsent 100 Continue never
        count): 408 if no response started, else RST_STREAM(CANCEL); the app sees a disconnect."""
        logger.debug("HTTP/2 request body of stream %d from %s stalled for %.0fs", stream.stream_id, self.client,
                     now - stream.since)
        cycle = stream.cycle
        stream.cycle = None
        if not stream.resp_status:
            stream.send_head(408, _TEXT, b"Request body not received in time\n", True)
        if cycle is not None:
            stream._exchange_done()
        if not stream.closed:
            self.conn.reset_stream(stream.stream_id, CANCEL)
            stream._close()
        if cycle is not None:
            cycle.disconnect()


# -- entry points ---------------------------------------------------------------------------------

def _websockets_enabled(server: ServerState) -> bool:
    if not server.config.ws or server.interface is None:
        return False
    from ..app.websocket import supports_websocket

    return supports_websocket(server.interface)


def preface_takeover(h1: Any, data: bytes) -> None:
    """``state.h2_preface``: an ``--http auto`` connection opened with the HTTP/2 preface."""
    HTTP2Protocol(h1.server).take_over(h1, data)


_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
_HOP_HEADERS = frozenset({b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection",
                          b"transfer-encoding", b"te"})


def h2c_upgrade(h1: Any, head: RequestHead) -> bool:
    """``state.upgrades[b"h2c"]``: HTTP/1.1 ``Upgrade: h2c`` (RFC 7540 section 3.2).

    Accepted for body-less requests over cleartext with exactly one ``HTTP2-Settings`` header;
    otherwise False (the request is served over HTTP/1.1, as the RFC allows).
    """
    if h1.scheme != "http" or head.has_body:
        return False
    settings = [value for name, value in head.headers if name == b"http2-settings"]
    if len(settings) != 1:
        return False
    server = h1.server
    proto = HTTP2Protocol(server)
    try:
        proto.conn.initiate_upgrade(settings[0])
    except ValueError:
        return False
    proto.started = True
    from .h1 import CLOSED

    transport = h1.transport
    rest, h1.buf = h1.buf, b""
    h1.phase = CLOSED  # the HTTP/1.1 protocol object is done with this connection
    transport.write(_SWITCHING)
    server.connections.discard(h1)
    proto._attach(transport)
    proto.scheme, proto.client, proto.server_addr = h1.scheme, h1.client, h1.server_addr
    transport.set_protocol(proto)
    proto._start()
    headers = [pair for pair in head.headers if pair[0] not in _HOP_HEADERS]
    upgraded = RequestHead(head.method, head.target, head.raw_path, head.query, "2", headers, 0, False, True,
                           False, None, head.host)
    stream = H2Stream(proto, 1, upgraded, True)
    proto.streams[1] = stream
    proto.in_receive = True
    try:
        if server.slots_free <= 0:  # --backpressure: wait for a slot, like any other stream
            stream.parked = []
            server.waiting.append(stream)
        else:
            proto.dispatch(stream, upgraded)
    finally:
        proto.in_receive = False
    proto._flush()
    if rest:
        proto.data_received(rest)
    return True


def protocol_factory(state: ServerState, tls: bool) -> Callable[[], asyncio.Protocol]:
    """The protocol factory for ``loop.create_server`` according to ``--http`` and TLS, registering
    the HTTP/2 hooks of ``--http auto`` connections."""
    from .h1 import HTTP1Protocol

    mode = state.config.http
    if mode == "2":
        return lambda: HTTP2Protocol(state)
    if mode == "auto":
        state.h2_preface = preface_takeover
        if not tls:
            state.upgrades[b"h2c"] = h2c_upgrade
    if not tls:
        return lambda: HTTP1Protocol(state)
    from .tls import TLSHTTP1Protocol

    if mode == "1":
        return lambda: TLSHTTP1Protocol(state)
    return lambda: ALPNProtocol(state)


class ALPNProtocol(asyncio.Protocol):
    """Picks HTTP/2 or HTTP/1.1 from the ALPN protocol negotiated in the TLS handshake."""

    __slots__ = ("state",)

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        proto: asyncio.Protocol
        if alpn == "h2":
            proto = HTTP2Protocol(self.state)
        else:
            from .tls import TLSHTTP1Protocol

            proto = TLSHTTP1Protocol(self.state)
        transport.set_protocol(proto)
        proto.connection_made(transport)
