"""One HTTP/2 request stream: the *channel* of its request cycle (see :mod:`.channel`).

An :class:`H2Stream` offers the same channel methods as the HTTP/1.1 connection (``send_head``/
``send_body``/``send_trailers``/``send_informational``/``drain``/``want_body``/``body_pressure``/
``response_complete``/``abort``, and the shared ``respond``/``respond_fd``/``send_file_response``), so
ASGI, WSGI, RSGI and static files work unchanged. Its connection (:class:`~.h2.HTTP2Protocol`) feeds
it the request; the stream turns the response into frames of the sans-IO connection
(:class:`~django_granian.protocol.h2conn.H2ServerConnection`) and writes them with the connection's
coalesced flush. Response data beyond the peer's windows waits in a per-stream queue
(``--http2-max-send-buffer-size`` makes the app's ``send`` wait); request data is acknowledged
(WINDOW_UPDATE) as the request cycle takes it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from ..protocol.h2conn import CANCEL, INTERNAL_ERROR, NO_ERROR
from ..protocol.http2 import encode_field, encode_fields, informational_headers, response_block, trailer_headers
from ..protocol.http11 import NO_BODY_STATUS, RequestHead
from .state import ServerState
from .streams import StreamChannel

if TYPE_CHECKING:
    from .h2 import HTTP2Protocol

logger = logging.getLogger("django_granian.server")

_SERVER_PAIR = (b"server", b"django-granian")


class Defaults:
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
            https = encode_fields(server.https_fields)  # --hsts, Alt-Svc: sent whatever the app set
            cls.blocks = [date_field + server_field + https, server_field + https, date_field + https, https]
        return cls.blocks


def length_field(length: int) -> bytes:
    return encode_field(b"content-length", b"%d" % length)


class H2Stream(StreamChannel):
    """One request/response exchange: the channel of its request cycle."""

    __slots__ = ("codec", "transport", "pending", "pending_bytes", "pending_end", "trailers", "unacked", "held")

    def __init__(self, conn: HTTP2Protocol, stream_id: int, head: RequestHead, remote_done: bool) -> None:
        self._init_stream(conn, stream_id, head, remote_done)
        self.codec = conn.conn
        self.transport = conn.transport
        self.pending: deque[memoryview] | None = None
        self.pending_bytes = 0
        self.pending_end = False
        self.trailers: bytes | None = None
        self.unacked = 0
        self.held = 0  # flow-controlled bytes whose connection window was given back, but not the stream's

    # -- state ------------------------------------------------------------------------------------
    @property
    def writing_paused(self) -> bool:
        return self.pending_bytes > self.conn.send_buffer_limit or self.conn.transport_paused

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
        if not self.closed:
            self.pending = None
            self.pending_bytes = 0
            super()._close()

    def _reject_body(self) -> None:
        self.codec.reset_stream(self.stream_id, CANCEL)
        self._close()

    def _reset_internal(self) -> None:
        if not self.closed:
            self.codec.reset_stream(self.stream_id, INTERNAL_ERROR)
            self._close()
            self.conn.schedule_flush()

    @property
    def gone(self) -> bool:
        return self.closed or self.transport.is_closing()

    def _resume(self, buffered: list[bytes | None]) -> None:
        """A --backpressure slot is free for this parked stream: dispatch it, then hand its cycle the
        body received while it waited."""
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
            conn.on_end(self)
        if self.held and not self.pressure:
            n, self.held = self.held, 0
            self.codec.ack_stream(self.stream_id, n)
        conn.schedule_flush()

    # -- the channel ------------------------------------------------------------------------------
    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        if self.closed or self.local_done:
            return
        block, content_length, present = response_block(status, headers)
        if present != 3:
            block += Defaults.get(self.server)[present]
        self.resp_status = status
        if self.no_body or status in NO_BODY_STATUS:
            self.no_body = True
            if end and content_length < 0 and self.head_only and status not in NO_BODY_STATUS:
                block += length_field(len(body))
            body = b""
        elif content_length >= 0:
            self.resp_left = content_length
            if body:
                body = self._clip(body, False)
        elif end:
            block += length_field(len(body))
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
            body = self._clip(body, False)  # END_STREAM ends the response, whatever its length
        if body or end:
            self._send_data(body, end)
            if not self.conn.in_receive:
                self.conn.schedule_flush()

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
        trailers = encode_fields(trailer_headers(headers))
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
        block = encode_fields(informational_headers(status, headers))
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

    def _end_stream(self) -> None:
        if self.pending is not None:
            self.pending_end = True
        else:
            self._send_data(b"", True)
            self.conn.schedule_flush()

    def _release_window(self) -> None:
        if self.unacked or self.held:
            self._ack_all()

    def _cancel(self) -> None:
        self.codec.reset_stream(self.stream_id, CANCEL)
        self._close()
