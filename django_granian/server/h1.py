"""HTTP/1.1 connections: an asyncio Protocol that is also the *channel* of its current request.

Parsing is done by the sans-IO :mod:`django_granian.protocol.http11`; this module owns buffering,
keep-alive, pipelining (one request at a time, responses in order), request body framing,
response framing (Content-Length / chunked / close-delimited), flow control, timeouts and
graceful shutdown. A response is written with a single ``transport.write`` whenever the app
sends its body in one message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from ..futures import wake
from ..logs import AccessRecord, log_access
from ..protocol.errors import ProtocolError
from ..protocol.http11 import (
    NO_BODY_STATUS,
    ChunkedDecoder,
    RequestHead,
    error_response,
    not_http1,
    parse_head,
    status_line,
)
from .sockets import transport_peers
from .state import ServerState

logger = logging.getLogger("django_granian.server")

IDLE, HEAD, BUSY, CLOSED = 0, 1, 2, 3
PIPELINE_LIMIT = 256 * 1024  # buffered pipelined bytes before reading is paused
DISCARD_LIMIT = 1024 * 1024  # unread request body we are willing to drain to keep a connection alive
LINGER_SECONDS = 2.0  # after an error response: read and drop what the client still sends, then close

_TOKEN_RE = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_GOOD_NAMES: set[bytes] = set()
_RESP_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"connection", b"server", b"date"})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ResponseHeaderError(ValueError):
    pass


class HTTP1Protocol(asyncio.Protocol):
    __slots__ = (
        "server", "loop", "transport", "buf", "phase", "since", "cycle", "client", "server_addr", "scheme",
        "keep_alive", "writing_paused", "drain_waiter", "reading_paused", "body_mode", "body_left", "decoder",
        "body_total", "discarding", "expect_100", "continue_sent", "head_only", "resp_chunked", "resp_left",
        "resp_status", "resp_bytes", "http10", "head", "t0", "in_loop", "pressure_paused", "peer_trusted",
        "scan_from", "first", "lingering", "parked", "counted",
    )

    def __init__(self, server: ServerState) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: Any = None
        self.buf = b""
        self.phase = HEAD  # the header read timeout runs from the moment the connection is accepted
        self.since = server.now
        self.cycle: Any = None
        self.client: tuple[str, int] | None = None
        self.server_addr: tuple[str, int] | None = None
        self.scheme = "http"
        self.keep_alive = True
        self.writing_paused = False
        self.drain_waiter: asyncio.Future | None = None
        self.reading_paused = False
        self.pressure_paused = False
        self.body_mode = 0  # 0: none/complete, 1: content-length, 2: chunked
        self.body_left = 0
        self.decoder: ChunkedDecoder | None = None
        self.body_total = 0
        self.discarding = False
        self.expect_100 = False
        self.continue_sent = False
        self.head_only = False
        self.resp_chunked = False
        self.resp_left = -1
        self.resp_status = 0
        self.resp_bytes = 0
        self.http10 = False
        self.head: RequestHead | None = None
        self.t0 = 0.0
        self.in_loop = False
        self.peer_trusted = False
        self.first = True  # no request dispatched yet on this connection (HTTP/2 preface detection)
        self.scan_from = 0  # bytes of an incomplete head already checked
        self.lingering = False  # closed for requests, draining input before the socket is closed
        self.parked: RequestHead | None = None  # waiting for a --backpressure slot
        self.counted = False  # the current exchange holds a --backpressure slot

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport
        server = self.server
        server.connections.add(self)
        self.client, self.server_addr, tls = transport_peers(transport)
        if tls:
            self.scheme = "https"
        proxy = server.proxy
        self.peer_trusted = proxy is not None and proxy.trusts(self.client[0] if self.client else None)
        self.since = server.now
        if server.metrics is not None:
            server.metrics.connection_opened()

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = CLOSED
        server = self.server
        server.connections.discard(self)
        if server.metrics is not None:
            server.metrics.connection_closed()
        self.parked = None
        self._end_exchange()
        cycle = self.cycle
        if cycle is not None:
            self.cycle = None
            cycle.disconnect()
        wake(self.drain_waiter)
        self.drain_waiter = None
        self.buf = b""

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        wake(self.drain_waiter)
        self.drain_waiter = None

    def data_received(self, data: bytes) -> None:
        if self.body_mode:
            data = self._body_data(data)
            if not data:
                return
        if self.phase == CLOSED:
            return
        if self.buf:
            self.buf += data
        else:
            self.buf = data
        if self.cycle is None:
            if not self.in_loop:
                self._process()
        elif len(self.buf) > PIPELINE_LIMIT and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        # Like nginx and uvicorn, a FIN from the client means it is gone (a half-close cannot be told
        # apart from a close): the app of a request in progress gets http.disconnect, and the
        # transport closes once what was already written is flushed.
        self.body_mode = 0
        return None

    # -- request processing -----------------------------------------------------------------------
    def _process(self) -> None:
        """Parse and dispatch buffered requests until one is still in progress."""
        self.in_loop = True
        server = self.server
        try:
            while (self.cycle is None and self.buf and not self.body_mode and self.phase != CLOSED
                   and self.parked is None):
                if self.first:
                    if len(self.buf) < 4 and b"PRI "[:len(self.buf)] == self.buf:
                        return  # may still become the HTTP/2 preface: wait for more bytes
                    if self.buf[:4] == b"PRI " and server.h2_preface is not None:
                        data, self.buf = self.buf, b""
                        server.h2_preface(self, data)  # the connection now speaks HTTP/2
                        return
                try:
                    result = parse_head(self.buf, server.limits, self.scan_from)
                except ProtocolError as exc:
                    if self.first and server.h2_preface is not None and self.scheme == "http" and not_http1(self.buf):
                        # --http auto: the first line is no HTTP/1.x request at all, so this is an invalid
                        # HTTP/2 connection preface (RFC 9113 3.4): the HTTP/2 engine answers it with
                        # GOAWAY(PROTOCOL_ERROR), which an HTTP/2 client can read (it cannot read a 400)
                        data, self.buf = self.buf, b""
                        server.h2_preface(self, data)
                        return
                    self._reject(exc.status, exc.reason)
                    return
                if result is None:
                    self.scan_from = len(self.buf)
                    if self.phase == IDLE:
                        self.phase = HEAD
                        self.since = server.now
                    return
                self.scan_from = 0
                head, used = result
                self.buf = self.buf[used:]
                self._dispatch(head)
        finally:
            self.in_loop = False
        if self.reading_paused and self.cycle is None and self.phase != CLOSED and self.parked is None:
            self.reading_paused = False
            self.transport.resume_reading()

    def _dispatch(self, head: RequestHead) -> None:
        server = self.server
        self.phase = BUSY
        self.first = False
        if server.slots_free <= 0 and head.upgrade is None:
            # --backpressure: every slot of this worker is busy; wait (not fail) for one to free up
            self.parked = head
            self.since = server.now
            if not self.reading_paused:
                self.reading_paused = True
                self.transport.pause_reading()
            server.waiting.append(self)
            return
        self.head = head
        self.http10 = head.http_version == "1.0"
        self.keep_alive = head.keep_alive and server.keep_alive and not server.shutting_down
        self.head_only = head.method == "HEAD"
        self.resp_status = 0
        self.resp_bytes = 0
        self.resp_chunked = False
        self.resp_left = -1
        self.expect_100 = head.expect_continue
        self.continue_sent = False
        self.discarding = False
        if server.access_log or server.metrics is not None:
            self.t0 = time.perf_counter()
        if head.chunked:
            self.body_mode = 2
            self.decoder = ChunkedDecoder(server.limits)
            self.body_total = 0
            self.since = server.now  # the body read timeout runs from here and from every body read
        elif head.content_length:
            self.body_mode = 1
            self.body_left = head.content_length
            self.since = server.now
        else:
            self.body_mode = 0
        if head.upgrade is not None:
            handler = server.upgrades.get(head.upgrade)
            if handler is not None and handler(self, head):
                return
        server.count_request()
        server.slots_free -= 1
        self.counted = True
        cycle = server.interface.http(self, head)
        if cycle is None:  # answered by the server itself (prefix 404, static file, ...)
            if self.counted and self.cycle is None:
                self._end_exchange()
            if self.body_mode and self.buf and self.phase != CLOSED:
                data, self.buf = self.buf, b""
                self.buf = self._body_data(data)
            return
        self.cycle = cycle
        if self.body_mode and self.buf:
            data, self.buf = self.buf, b""
            self.buf = self._body_data(data)
        cycle.run()

    def unpark(self) -> None:
        """Called by ServerState when a --backpressure slot is free for this parked request."""
        head = self.parked
        self.server.slots_free += 1  # the slot reserved for us: _dispatch takes it again
        if head is None or self.phase == CLOSED:
            self.server.wake_waiting()  # give it to the next one
            return
        self.parked = None
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        self._dispatch(head)
        if self.cycle is None and self.buf and not self.in_loop and self.phase != CLOSED:
            self._process()

    def _body_data(self, data: bytes) -> bytes:
        """Consume request body bytes; returns what follows the body (a pipelined request)."""
        cycle = self.cycle
        self.since = self.server.now
        if self.body_mode == 1:
            left = self.body_left
            if len(data) <= left:
                chunk, rest = data, b""
            else:
                chunk, rest = data[:left], data[left:]
            self.body_left = left = left - len(chunk)
            if not self.discarding and cycle is not None:
                cycle.feed_body(chunk)
            if left == 0:
                self.body_mode = 0
                self._body_complete()
            return rest
        decoder = self.decoder
        assert decoder is not None
        try:
            chunks, rest = decoder.feed(data)
        except ProtocolError as exc:
            self._body_error(exc.status, exc.reason)
            return b""
        if chunks:
            total = self.body_total = self.body_total + sum(map(len, chunks))
            limit = self.server.limits.max_body
            if limit and total > limit:
                self._body_error(413, "request body too large")
                return b""
            if not self.discarding and cycle is not None:
                for chunk in chunks:
                    cycle.feed_body(chunk)
        if decoder.done:
            self.body_mode = 0
            self._body_complete()
        return rest

    def _body_complete(self) -> None:
        if self.discarding:
            self.discarding = False
            if self.phase != CLOSED:
                self._next()
        elif self.cycle is not None:
            self.cycle.end_body()

    def _body_error(self, status: int, reason: str) -> None:
        self.body_mode = 0
        self.keep_alive = False
        cycle = self.cycle
        if self.resp_status == 0 and not self.discarding:
            # the app has not answered yet: answer for it, then tell it the client is gone. The
            # exchange ends here (logged, counted, its slot freed); the app's late calls are ignored.
            self._reject(status, reason)
            if cycle is not None:
                self.cycle = None
                self._exchange_done()
        else:
            self._close()
        if cycle is not None:
            cycle.disconnect()

    def _reject(self, status: int, reason: str) -> None:
        """Answer a protocol error and close; nothing after the bad bytes is ever parsed."""
        self.buf = b""
        self.body_mode = 0
        if self.phase == CLOSED:
            return
        logger.debug("rejecting request from %s: %s %s", self.client, status, reason)
        response = error_response(status, reason, self.server.date)
        self.transport.write(response)
        self.resp_status = status
        if self.server.access_log and self.head is None:
            # a request that never parsed: logged like nginx logs a bad request, with "-" fields
            client = self.client
            log_access(self.server.access_fmt, AccessRecord(
                client[0] if client else "-", "-", "-", b"", "-", self.scheme, status,
                len(response) - response.index(b"\r\n\r\n") - 4, time.perf_counter(), []))
        self._close(linger=True)

    def _close(self, linger: bool = False) -> None:
        """Stop serving this connection. With ``linger``, the client may still be sending (a body we
        refused): half-close, then read and drop its bytes for a moment, so that the kernel does not
        answer them with a reset that would destroy our response before the client reads it."""
        if self.phase != CLOSED:
            self.phase = CLOSED
            self.buf = b""
            transport = self.transport
            if linger and transport.can_write_eof():
                self.lingering = True
                self.since = self.server.now
                if self.reading_paused or self.pressure_paused:
                    self.reading_paused = self.pressure_paused = False
                    transport.resume_reading()
                transport.write_eof()  # data_received drops input while CLOSED; EOF closes
            else:
                transport.close()

    def _end_exchange(self) -> None:
        if self.counted:
            self.counted = False
            self.server.release_slot()

    def _exchange_done(self) -> None:
        """The current request's response is over (sent by the app or by the server for it): free its
        --backpressure slot, log it, count it."""
        server = self.server
        if self.counted:  # _end_exchange(), inlined: this runs once per response
            self.counted = False
            server.release_slot()
        if server.access_log:
            self._log_access()
        if server.metrics is not None:
            server.metrics.response(self.resp_status, self.t0)

    def _next(self) -> None:
        """The current exchange is over: go idle and serve any pipelined request."""
        self.phase = IDLE
        self.since = self.server.now
        self.head = None
        if self.server.shutting_down:
            self._close()
            return
        if self.buf and not self.in_loop:
            self._process()
        elif self.reading_paused and not self.in_loop:
            self.reading_paused = False
            self.transport.resume_reading()

    def check_timeout(self, now: float) -> None:
        phase = self.phase
        if phase == IDLE:
            if now - self.since > self.server.keep_alive_timeout:
                self._close()
        elif phase == HEAD:
            if now - self.since > self.server.header_timeout:
                if self.buf:
                    self._reject(408, "request head not received in time")
                else:
                    self._close()  # not a byte since it connected (e.g. a browser preconnect): no 408
        elif phase == CLOSED:
            if self.lingering and now - self.since > LINGER_SECONDS:
                self.lingering = False
                self.transport.close()
        elif self.discarding and self.cycle is None:
            # answered, but the rest of the request body never comes: do not wait for it forever
            if now - self.since > self.server.header_timeout:
                self.body_mode = 0
                self._close()
        elif (self.body_mode and self.cycle is not None and not self.reading_paused and not self.pressure_paused
              and not (self.expect_100 and not self.continue_sent)):
            # a request body that stopped arriving while we are reading it (the client stalled, not the
            # app: a paused read or an unsent 100 Continue never counts): 408, the app sees a disconnect
            if now - self.since > self.server.body_timeout:
                logger.debug("request body from %s stalled for %.0fs", self.client, now - self.since)
                self._body_error(408, "request body not received in time")

    def shutdown(self) -> None:
        """Graceful shutdown: close idle connections now, busy ones after their response."""
        self.keep_alive = False
        if self.phase in (IDLE, HEAD):
            self._close()
        elif self.phase == CLOSED and self.lingering:
            self.lingering = False
            self.transport.close()
        # a request parked by --backpressure stays parked: it is served (with `connection: close`) when a
        # slot frees up within --graceful-timeout, like an HTTP/2 stream; closing it would drop a request
        # the client already sent, with no way for it to know it was never processed

    # -- the channel, used by the request cycle ---------------------------------------------------
    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        key: tuple | None
        try:
            key = headers if type(headers) is tuple else tuple(headers)
            info = _BLOCKS.get(key)
        except TypeError:  # unhashable pairs (lists): validate every time
            key = info = None
        if info is None:
            info = header_block(headers)
            if key is not None and len(info[0]) <= _BLOCK_MAX_BYTES:
                if len(_BLOCKS) >= _BLOCKS_MAX:
                    _BLOCKS.clear()
                _BLOCKS[key] = info
        block, content_length, has_server, has_date, close = info
        if close:
            self.keep_alive = False
        line = status_line(status)
        server = self.server
        if has_date or has_server:
            extra = (b"" if has_date else server.date) + (b"" if has_server or not server.server_header
                                                          else b"server: django-granian\r\n") + server.hsts
        else:
            extra = server.default_headers
        self.resp_status = status
        no_body = self.head_only or status in NO_BODY_STATUS or status < 200
        if no_body:
            if content_length < 0 and end and self.head_only and status not in NO_BODY_STATUS:
                framing = b"content-length: " + str(len(body)).encode() + b"\r\n"
            else:
                framing = b""
            self.resp_left = 0
            body = b""
        elif content_length >= 0:
            framing = b""
            self.resp_left = content_length
        elif end:
            size = len(body)
            framing = _LENGTH_LINES.get(size) or _length_line(size)
            self.resp_left = size
        elif self.http10:
            self.keep_alive = False
            framing = b""
            self.resp_left = -1
        else:
            framing = b"transfer-encoding: chunked\r\n"
            self.resp_chunked = True
        if end and self.body_mode and not self.discarding:
            self._unread_body_policy()
        if not self.keep_alive:
            conn = b"connection: close\r\n"
        elif self.http10:
            conn = b"connection: keep-alive\r\n"
        else:
            conn = b""
        if self.resp_chunked:
            if body:
                payload = b"%x\r\n%b\r\n%b" % (len(body), body, b"0\r\n\r\n" if end else b"")
            else:
                payload = b"0\r\n\r\n" if end else b""
        elif end and len(body) == self.resp_left:  # the common case: the whole declared body at once
            self.resp_left = 0
            payload = body
        else:
            payload = self._clip(body, end) if body or end else body
        self.resp_bytes = len(body)
        self.transport.write(b"".join((line, block, extra, framing, conn, b"\r\n", payload)))

    def _clip(self, body: bytes, end: bool) -> bytes:
        left = self.resp_left
        if left >= 0:
            if len(body) > left:
                logger.error("ASGI/WSGI app sent more body than its Content-Length; truncating and closing")
                body = body[:left]
                self.keep_alive = False
            self.resp_left = left - len(body)
            if end and self.resp_left > 0:
                logger.error("response body shorter than its Content-Length; closing the connection")
                self.keep_alive = False
        return body

    def send_body(self, body: bytes, end: bool) -> None:
        if self.phase == CLOSED:
            return
        if self.resp_chunked:
            if body:
                self.resp_bytes += len(body)
                self.transport.write(b"%x\r\n%b\r\n%b" % (len(body), body, b"0\r\n\r\n" if end else b""))
            elif end:
                self.transport.write(b"0\r\n\r\n")
        elif body:
            if self.resp_left == 0 and (self.head_only or self.resp_status in NO_BODY_STATUS):
                return
            body = self._clip(body, end)
            self.resp_bytes += len(body)
            if body:
                self.transport.write(body)
        elif end:
            self._clip(b"", True)

    def send_trailers(self, headers: Any) -> None:
        if self.phase == CLOSED:
            return
        if not self.resp_chunked:
            if not self.head_only and self.resp_status not in NO_BODY_STATUS:
                self._clip(b"", True)
            return
        lines = [b"0\r\n"]
        for name, value in headers:
            _check_name(name)
            if b"\r" in value or b"\n" in value or b"\x00" in value:
                raise ResponseHeaderError("trailer values must not contain CR, LF or NUL")
            lines.append(name + b": " + value + b"\r\n")
        lines.append(b"\r\n")
        self.transport.write(b"".join(lines))

    def send_informational(self, status: int, headers: Any) -> None:
        if self.http10 or self.phase == CLOSED:
            return
        lines = [status_line(status)]
        for name, value in headers:
            _check_name(name)
            if b"\r" in value or b"\n" in value:
                raise ResponseHeaderError("header values must not contain CR or LF")
            lines.append(name + b": " + value + b"\r\n")
        lines.append(b"\r\n")
        self.transport.write(b"".join(lines))

    async def drain(self) -> None:
        if self.writing_paused and self.phase != CLOSED:
            waiter = self.drain_waiter
            if waiter is None:
                waiter = self.drain_waiter = self.loop.create_future()
            await waiter

    def want_body(self, cycle: Any) -> None:
        if self.expect_100 and not self.continue_sent and self.resp_status == 0 and self.phase != CLOSED:
            self.continue_sent = True
            self.transport.write(_CONTINUE)

    def body_pressure(self, high: bool) -> None:
        if self.phase == CLOSED:
            return
        if high and not self.pressure_paused:
            self.pressure_paused = True
            self.transport.pause_reading()
        elif not high and self.pressure_paused:
            self.pressure_paused = False
            self.transport.resume_reading()

    def _unread_body_policy(self) -> None:
        """The response is complete but the request body is not: drain it or close."""
        if self.expect_100 and not self.continue_sent:
            self.keep_alive = False  # the client may still be waiting to send: do not wait for it
        elif self.body_mode == 1 and self.body_left > DISCARD_LIMIT:
            self.keep_alive = False
        elif self.body_mode == 2 and self.body_total > DISCARD_LIMIT:
            self.keep_alive = False

    def response_complete(self, cycle: Any) -> None:
        if cycle is not self.cycle:
            return
        self.cycle = None
        self._exchange_done()
        server = self.server
        if self.pressure_paused:
            self.pressure_paused = False
            if self.phase != CLOSED:
                self.transport.resume_reading()
        if not self.keep_alive or self.phase == CLOSED:
            unread = self.body_mode
            self.body_mode = 0
            self._close(linger=bool(unread))
            cycle.disconnect()
            return
        if self.body_mode:
            self.discarding = True  # drained by _body_data, then _next()
            self.since = server.now
            return
        self._next()

    def abort(self, reason: str) -> None:
        logger.debug("closing connection from %s: %s", self.client, reason)
        self.keep_alive = False
        cycle = self.cycle
        if cycle is not None:
            self.cycle = None
            self._end_exchange()
            if self.server.access_log:
                self._log_access()
        self._close()

    def _log_access(self) -> None:
        head = self.head
        if head is None:
            return
        client = self.client
        record = AccessRecord(client[0] if client else "-", head.method, head.raw_path.decode("latin-1"),
                              head.query, "HTTP/" + head.http_version, self.scheme, self.resp_status,
                              self.resp_bytes, self.t0, head.headers)
        log_access(self.server.access_fmt, record)

    def respond(self, status: int, headers: Any, body: bytes) -> None:
        """A complete response produced by the server itself, not the app."""
        self.cycle = marker = ServerResponse()
        self.send_head(status, headers, body, True)
        self.response_complete(marker)

    # -- for the static file engine and pathsend ----------------------------------------------------
    async def send_file_response(self, status: int, headers: Any, path: str) -> None:
        from .sendfile import send_file_response

        await send_file_response(self, status, headers, path)


class ServerResponse:
    """Stands in for a request cycle when the server answers by itself (an error, a redirect, a static
    file streaming out): the channel's current "cycle", so pipelined requests wait behind it."""

    __slots__ = ()

    def disconnect(self) -> None:
        pass

    def feed_body(self, data: bytes) -> None:
        pass

    def end_body(self) -> None:
        pass


_LENGTH_LINES: dict[int, bytes] = {}


def _length_line(size: int) -> bytes:
    line = b"content-length: %d\r\n" % size
    if len(_LENGTH_LINES) < 4096:
        _LENGTH_LINES[size] = line
    return line


_BLOCKS: dict[tuple, tuple[bytes, int, bool, bool, bool]] = {}
_BLOCKS_MAX = 1024
_BLOCK_MAX_BYTES = 4096  # bigger header sets (long CSPs, many cookies) are rarely repeated: not remembered


def header_block(headers: Any) -> tuple[bytes, int, bool, bool, bool]:
    """Validate response headers and serialise them once: ``(block, content_length or -1,
    has_server, has_date, connection_close)``. ``send_head`` remembers the result per header set
    (apps usually send the same few sets), so a repeated set costs one dict lookup."""
    parts: list[bytes] = []
    append = parts.append
    content_length = -1
    has_server = has_date = close = False
    good = _GOOD_NAMES
    n = 0
    for name, value in headers:
        if name not in good:
            _check_name(name)
        lname = name.lower()
        if lname in _RESP_SPECIAL:
            if lname == b"content-length":
                if not value.isdigit():
                    raise ResponseHeaderError(f"invalid content-length {value!r}")
                content_length = int(value)
            elif lname == b"transfer-encoding":
                continue  # framing is ours
            elif lname == b"connection":
                if b"close" in value.lower():
                    close = True
                continue
            elif lname == b"server":
                has_server = True
            else:
                has_date = True
        append(name)
        append(b": ")
        append(value)
        append(b"\r\n")
        n += 1
    block = b"".join(parts)
    if block.count(b"\n") != n or block.count(b"\r") != n or b"\x00" in block:
        raise ResponseHeaderError("response header names and values must not contain CR, LF or NUL")
    return block, content_length, has_server, has_date, close


def _check_name(name: bytes) -> None:
    if type(name) is not bytes:
        raise ResponseHeaderError(f"header names must be bytes, got {type(name).__name__}")
    if not _TOKEN_RE.fullmatch(name):
        raise ResponseHeaderError(f"invalid header name {name!r}")
    if len(_GOOD_NAMES) < 1024:
        _GOOD_NAMES.add(name)
