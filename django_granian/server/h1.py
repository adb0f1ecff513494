"""HTTP/1.1 connections: an asyncio Protocol that is also the *channel* of its current request.

Parsing is done by the sans-IO :mod:`django_granian.protocol.http11`, response header blocks by
:mod:`django_granian.protocol.h1response`; what every channel does (end of an exchange, server-made
responses, file bodies, --backpressure parking) is in :mod:`.channel`. This module owns buffering,
keep-alive, pipelining (one request at a time, responses in order), request body framing,
response framing (Content-Length / chunked / close-delimited), flow control, timeouts and
graceful shutdown. A response is written with a single ``transport.write`` whenever the app
sends its body in one message.

One class on purpose, and so over 500 lines: the connection is one state machine (``phase`` and
``body_mode`` decide what every event means); split across files it would be harder to follow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..futures import wake
from ..logs import AccessRecord, log_access
from ..protocol.errors import ProtocolError
from ..protocol.fields import field_lines
from ..protocol.h1response import BLOCKS, LENGTH_LINES, header_block, length_line
from ..protocol.http11 import (
    NO_BODY_STATUS,
    ChunkedDecoder,
    RequestHead,
    error_response,
    not_http1,
    parse_head,
    status_line,
)
from .channel import Channel
from .state import ServerState

logger = logging.getLogger("django_granian.server")

IDLE, HEAD, BUSY, CLOSED = 0, 1, 2, 3  # phase: waiting for a request, reading a head, in an exchange, closed
BODY_NONE, BODY_LENGTH, BODY_CHUNKED = 0, 1, 2  # body_mode: how request body bytes are read (0: none left)
PIPELINE_LIMIT = 256 * 1024  # buffered pipelined bytes before reading is paused
DISCARD_LIMIT = 1024 * 1024  # unread request body we are willing to drain to keep a connection alive
LINGER_SECONDS = 2.0  # after an error response: read and drop what the client still sends, then close

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HTTP1Protocol(Channel, asyncio.Protocol):
    __slots__ = (
        "loop", "transport", "buf", "phase", "since", "keep_alive", "writing_paused", "drain_waiter",
        "reading_paused", "body_mode", "body_left", "decoder", "body_total", "discarding", "expect_100",
        "continue_sent", "resp_chunked", "http10", "in_loop", "pressure_paused", "scan_from", "first", "lingering",
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
        self.peer_trusted = False
        self.extensions: dict | None = None  # TLS connections: the ASGI tls extension
        self.keep_alive = True
        self.writing_paused = False
        self.drain_waiter: asyncio.Future | None = None
        self.reading_paused = False
        self.pressure_paused = False
        self.body_mode = BODY_NONE
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
        self.first = True  # no request dispatched yet on this connection (HTTP/2 preface detection)
        self.scan_from = 0  # bytes of an incomplete head already checked
        self.lingering = False  # closed for requests, draining input before the socket is closed
        self.parked: RequestHead | None = None  # waiting for a --backpressure slot
        self.counted = False  # the current exchange holds a --backpressure slot

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport
        server = self.server
        if server.opened(self, transport):
            self.scheme = "https"
        self.since = server.now

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = CLOSED
        self.server.closed(self)
        self.parked = None
        self._release_slot()
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
        self.body_mode = BODY_NONE
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
            self.since = server.now
            if not self.reading_paused:
                self.reading_paused = True
                self.transport.pause_reading()
            self._park(head)  # --backpressure: every slot is busy
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
            self.body_mode = BODY_CHUNKED
            self.decoder = ChunkedDecoder(server.limits)
            self.body_total = 0
            self.since = server.now  # the body read timeout runs from here and from every body read
        elif head.content_length:
            self.body_mode = BODY_LENGTH
            self.body_left = head.content_length
            self.since = server.now
        else:
            self.body_mode = BODY_NONE
        if head.upgrade is not None:
            handler = server.upgrades.get(head.upgrade)
            if handler is not None and handler(self, head):
                return
        server.count_request()  # the request takes a --backpressure slot (as HTTP/2's dispatch does)
        server.slots_free -= 1
        self.counted = True
        cycle = server.interface.http(self, head)
        if cycle is None:  # answered by the server itself (prefix 404, static file, ...)
            if self.counted and self.cycle is None:
                self._release_slot()
            if self.body_mode and self.buf and self.phase != CLOSED:
                data, self.buf = self.buf, b""
                self.buf = self._body_data(data)
            return
        self.cycle = cycle
        if self.body_mode and self.buf:
            data, self.buf = self.buf, b""
            self.buf = self._body_data(data)
        cycle.run()

    def _resume(self, head: RequestHead) -> None:
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
        if self.body_mode == BODY_LENGTH:
            left = self.body_left
            if len(data) <= left:
                chunk, rest = data, b""
            else:
                chunk, rest = data[:left], data[left:]
            self.body_left = left = left - len(chunk)
            if not self.discarding and cycle is not None:
                cycle.feed_body(chunk)
            if left == 0:
                self.body_mode = BODY_NONE
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
            self.body_mode = BODY_NONE
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
        self.body_mode = BODY_NONE
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
        self.body_mode = BODY_NONE
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

    def _next(self) -> None:
        """The current exchange is over: go idle and serve any pipelined request."""
        self.phase = IDLE
        self.since = self.server.now
        self.head = None
        # During a graceful shutdown a connection gets here only after a keep-alive response (one that started
        # before the shutdown): the client may already be sending its next request, so the connection stays
        # open; that request is answered with `connection: close` (send_head), and shutdown() closes what is
        # still idle at the end of the grace period with a lingering close.
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
                self.body_mode = BODY_NONE
                self._close()
        elif (self.body_mode and self.cycle is not None and not self.reading_paused and not self.pressure_paused
              and not (self.expect_100 and not self.continue_sent)):
            # a request body that stopped arriving while we are reading it (the client stalled, not the
            # app: a paused read or an unsent 100 Continue never counts): 408, the app sees a disconnect
            if now - self.since > self.server.body_timeout:
                logger.debug("request body from %s stalled for %.0fs", self.client, now - self.since)
                self._body_error(408, "request body not received in time")

    def shutdown(self) -> None:
        """Graceful shutdown, after the grace period: idle connections get a lingering close (half-close, read and
        drop for a moment: a request that crossed our FIN gets no reset that would hide the responses before it);
        a request in progress (also a head still arriving) is answered with `connection: close`, then closed."""
        self.keep_alive = False
        if self.phase == IDLE or (self.phase == HEAD and not self.buf):
            self._close(linger=True)
        elif self.phase == CLOSED and self.lingering:
            self.lingering = False
            self.transport.close()
        # a request parked by --backpressure stays parked: it is served (with `connection: close`) when a
        # slot frees up within --graceful-timeout, like an HTTP/2 stream; closing it would drop a request
        # the client already sent, with no way for it to know it was never processed

    # -- the channel, used by the request cycle ---------------------------------------------------
    @property
    def gone(self) -> bool:
        transport = self.transport
        return self.phase == CLOSED or transport is None or transport.is_closing()

    def sendfile_socket(self) -> int:
        transport = self.transport
        if (self.resp_chunked or transport is None or transport.is_closing()
                or transport.get_extra_info("sslcontext") is not None):
            return -1
        sock = transport.get_extra_info("socket")
        return sock.fileno() if sock is not None else -1

    def _length_broken(self) -> None:
        self.keep_alive = False  # the client cannot tell where this response ends: close after it

    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        key: tuple | None
        try:
            key = headers if type(headers) is tuple else tuple(headers)
            info = BLOCKS.get(key)
        except TypeError:  # unhashable pairs (lists): validate every time
            key = info = None
        if info is None:
            info = header_block(headers, key)
        block, content_length, has_server, has_date, close = info
        if close:
            self.keep_alive = False
        line = status_line(status)
        server = self.server
        if has_date or has_server:
            extra = (b"" if has_date else server.date) + (b"" if has_server or not server.server_header
                                                          else b"server: django-granian\r\n") + server.https_headers
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
            framing = LENGTH_LINES.get(size) or length_line(size)
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
        if server.shutting_down:
            self.keep_alive = False  # the last response on this connection, whenever its request arrived
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
        self.transport.write(b"".join([b"0\r\n", *field_lines(headers, "trailer values"), b"\r\n"]))

    def send_informational(self, status: int, headers: Any) -> None:
        if self.http10 or self.phase == CLOSED:
            return
        self.transport.write(b"".join([status_line(status), *field_lines(headers), b"\r\n"]))

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
        elif self.body_mode == BODY_LENGTH and self.body_left > DISCARD_LIMIT:
            self.keep_alive = False
        elif self.body_mode == BODY_CHUNKED and self.body_total > DISCARD_LIMIT:
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
            self.body_mode = BODY_NONE
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
            self._release_slot()
            if self.server.access_log:
                self._log_access()
        self._close()
