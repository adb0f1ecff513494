"""One HTTP/3 request stream: the *channel* of its request cycle (see :mod:`.channel`).

An :class:`H3Stream` offers the channel methods of the HTTP/1.1 connection and the HTTP/2 stream
(``send_head``/``send_body``/``send_trailers``/``send_informational``/``drain``/``want_body``/
``body_pressure``/``response_complete``/``abort`` and the shared ``respond``/``respond_fd``/
``send_file_response``), so ASGI, WSGI, RSGI, the Django fast path and static files run unchanged.
Its connection (:class:`~.h3.HTTP3Connection`) feeds it the request; the stream turns the response
into HTTP/3 frames with aioquic (QPACK-encoded HEADERS, DATA) and asks the connection to transmit,
once per loop iteration for all its streams.

Flow control: aioquic keeps response data it cannot send yet; past ``SEND_HIGH_WATER`` bytes held
for a stream (unsent or unacknowledged, :func:`.quic.buffered`) ``writing_paused`` is true and the
app's ``send``/``drain`` waits for acknowledgements. Request data opens the stream's receive window
as it is handed to the cycle; ``body_pressure`` holds the window (:class:`.quic.ServerQuic`).

:class:`H3WebSocket` is the stream of an RFC 9220 extended CONNECT: the ws channel of a WebSocket
session (``app/websocket.py``), its frames in DATA, the end of the stream its close.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..protocol.http2 import informational_headers, response_fields, trailer_headers
from ..protocol.http11 import NO_BODY_STATUS, RequestHead
from .quic import SEND_ERRORS, buffered
from .state import ServerState
from .streams import StreamChannel

if TYPE_CHECKING:
    from .h3 import HTTP3Connection

logger = logging.getLogger("django_granian.server")

SEND_HIGH_WATER = 256 * 1024  # response bytes held by aioquic for one stream before the app waits
H3_NO_ERROR = 0x100
H3_INTERNAL_ERROR = 0x102
H3_REQUEST_REJECTED = 0x10B
H3_REQUEST_CANCELLED = 0x10C
_SERVER_PAIR = (b"server", b"django-granian")


class Defaults:
    """The ``date``/``server``/``strict-transport-security`` fields of HTTP/3 responses, rebuilt when the
    per-second Date changes: ``fields[mask]`` holds the ones an app did not set (mask as in
    :func:`~..protocol.http2.response_fields`). No Alt-Svc: the client is on HTTP/3 already."""

    date = b""
    fields: list[list[tuple[bytes, bytes]]] = [[], [], [], []]

    @classmethod
    def get(cls, server: ServerState) -> list[list[tuple[bytes, bytes]]]:
        date = server.date
        if date is not cls.date:
            cls.date = date
            date_field = [(b"date", date[6:].strip())]
            server_field = [_SERVER_PAIR] if server.server_header else []
            https = [pair for pair in server.https_fields if pair[0] != b"alt-svc"]
            cls.fields = [date_field + server_field + https, server_field + https, date_field + https, https]
        return cls.fields


class H3Stream(StreamChannel):
    """One request/response exchange on a QUIC stream: the channel of its request cycle."""

    __slots__ = ("h3", "quic")

    protocol = "HTTP/3"

    def __init__(self, conn: HTTP3Connection, stream_id: int, head: RequestHead, remote_done: bool) -> None:
        assert conn.h3 is not None  # requests arrive only after ALPN h3 was negotiated
        self._init_stream(conn, stream_id, head, remote_done)
        self.h3 = conn.h3
        self.quic = conn.quic

    # -- state ------------------------------------------------------------------------------------
    @property
    def writing_paused(self) -> bool:
        return buffered(self.quic, self.stream_id) > SEND_HIGH_WATER

    @property
    def gone(self) -> bool:
        return self.closed or self.conn.closed

    def _finish_local(self) -> None:
        """The response is complete (FIN sent)."""
        self.local_done = True
        if self.waiter is not None:
            self._wake()
        if not self.remote_done:
            # the response is complete but the request body is not: stop it (RFC 9114 section 4.1)
            self.remote_done = True
            self._stop_receiving(H3_NO_ERROR)
        self.conn.stream_done(self)

    def _stop_receiving(self, code: int) -> None:
        try:
            self.quic.stop_stream(self.stream_id, code)
        except SEND_ERRORS:
            pass

    def _reject_body(self) -> None:
        self.reset(H3_REQUEST_REJECTED)

    def _reset_internal(self) -> None:
        self.reset(H3_INTERNAL_ERROR)

    def _resume(self, buffered_body: list[bytes | None]) -> None:
        """A --backpressure slot is free for this parked stream: dispatch it, then hand its cycle the
        body received while it waited."""
        conn = self.conn
        self.quic.paused.discard(self.stream_id)
        conn.dispatch(self, self.head)
        for data in buffered_body:
            if data is None:
                conn.on_end(self)
                break
            cycle = self.cycle
            if cycle is None or self.completed or self.closed or not conn.feed(self, cycle, data):
                break
        conn.mark()

    def _send(self, headers: list[tuple[bytes, bytes]] | None, body: bytes, end: bool) -> bool:
        """HEADERS and/or DATA through aioquic; False (and the stream closed) if the stream is gone."""
        try:
            if headers is not None:
                self.h3.send_headers(self.stream_id, headers, end and not body)
            if body or (end and headers is None):
                self.h3.send_data(self.stream_id, body, end)
        except SEND_ERRORS as exc:
            logger.debug("HTTP/3 stream %d from %s: cannot send (%s)", self.stream_id, self.client, exc)
            self._close()
            return False
        self.conn.mark()
        if end:
            self._finish_local()
        return True

    # -- the channel ------------------------------------------------------------------------------
    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        if self.closed or self.local_done:
            return
        fields, content_length, present = response_fields(status, headers)
        fields = fields + Defaults.get(self.server)[present]
        self.resp_status = status
        if self.no_body or status in NO_BODY_STATUS:
            self.no_body = True
            if end and content_length < 0 and self.head_only and status not in NO_BODY_STATUS:
                fields.append((b"content-length", b"%d" % len(body)))
            body = b""
        elif content_length >= 0:
            self.resp_left = content_length
            if body:
                body = self._clip(body, False)
        elif end:
            fields.append((b"content-length", b"%d" % len(body)))
        self.resp_bytes = len(body)
        self._send(fields, body, end)

    def send_body(self, body: bytes, end: bool) -> None:
        if self.closed or self.local_done:
            return
        if self.no_body:
            body = b""
        elif body and self.resp_left >= 0:
            body = self._clip(body, False)  # the end of the stream ends the response, whatever its length
        if body or end:
            self.resp_bytes += len(body)
            self._send(None, body, end)

    def send_trailers(self, headers: Any) -> None:
        if self.closed or self.local_done:
            return
        trailers = trailer_headers(headers)
        if trailers:
            self._send(trailers, b"", True)
        else:
            self._send(None, b"", True)

    def send_informational(self, status: int, headers: Any) -> None:
        if self.closed or self.local_done or self.resp_status:
            return
        self._send(informational_headers(status, headers), b"", False)

    async def drain(self) -> None:
        if self.closed or not self.writing_paused:
            return
        waiter = self.waiter
        if waiter is None:
            waiter = self.waiter = self.conn.loop.create_future()
        self.conn.writers.add(self)
        await waiter

    def body_pressure(self, high: bool) -> None:
        paused = self.quic.paused
        if high:
            self.pressure = True
            paused.add(self.stream_id)
        elif self.pressure:
            self.pressure = False
            self.since = self.server.now  # the window reopens: the client gets a full body timeout
            paused.discard(self.stream_id)
            self.conn.mark()  # the window update goes out

    def _end_stream(self) -> None:
        self._send(None, b"", True)

    def _release_window(self) -> None:
        if self.pressure:
            self.body_pressure(False)

    def _cancel(self) -> None:
        self.reset(H3_REQUEST_REJECTED)

    def reset(self, code: int) -> None:
        """Reset both directions of the stream (RESET_STREAM and STOP_SENDING with ``code``)."""
        if self.closed:
            return
        quic = self.quic
        try:
            if not self.local_done:
                quic.reset_stream(self.stream_id, code)
            if not self.remote_done:
                quic.stop_stream(self.stream_id, code)
        except SEND_ERRORS:
            pass
        self._close()
        self.conn.mark()


class H3WebSocket(H3Stream):
    """An RFC 9220 extended CONNECT stream: the *ws channel* of a WebSocket session
    (contract in :mod:`django_granian.app.websocket`)."""

    __slots__ = ("session",)

    def __init__(self, conn: HTTP3Connection, stream_id: int, head: RequestHead, remote_done: bool) -> None:
        super().__init__(conn, stream_id, head, remote_done)
        self.session: Any = None

    def accept(self, headers: list[tuple[bytes, bytes]]) -> None:
        if self.closed or self.local_done:
            return
        hdrs = [pair for pair in headers if pair[0].lower() not in _WS_SKIP]
        fields, _, present = response_fields(200, hdrs)
        self.resp_status = 200
        self._send(fields + Defaults.get(self.server)[present], b"", False)

    def write(self, data: bytes) -> None:
        if not self.closed and not self.local_done and data:
            self._send(None, data, False)

    def close(self) -> None:
        if not self.closed and not self.local_done:
            self._send(None, b"", True)

    def abort(self, reason: str = "") -> None:  # type: ignore[override]
        self.reset(H3_REQUEST_CANCELLED)

    def pause_reading(self) -> None:
        self.body_pressure(True)

    def resume_reading(self) -> None:
        self.body_pressure(False)


_WS_SKIP = frozenset({b"connection", b"upgrade", b"sec-websocket-accept", b"transfer-encoding"})
