"""What the server does to app responses, in one place for every interface and protocol.

ASGI, WSGI and RSGI cycles all answer through a *channel* (``send_head``/``send_body``/...), which is
an HTTP/1.1 connection or an HTTP/2 stream. When response compression (``--compress``) or internal
file hand-over (``--x-accel-route``, ``--x-sendfile-root``) is configured, :meth:`HTTPInterface.http`
gives the cycle a :class:`FilteredChannel` around the real one instead, so each feature is written
once and behaves the same on HTTP/1.1 and HTTP/2 under every interface. Without those options no
filter exists and responses cost nothing extra.

At the response head the filter decides once:

- an ``X-Accel-Redirect`` / ``X-Sendfile`` header: the app's response is replaced by that file,
  served by the static engine on the real channel (:mod:`django_granian.static_files.accel`); what
  the app still sends is dropped, and an app still streaming is told the client is gone;
- otherwise compression (:mod:`django_granian.compression`): a body sent whole is compressed at once
  (with its new Content-Length, or sent as it is if compressing does not make it smaller); a
  streamed body is compressed chunk by chunk, each chunk flushed so that it can be decoded on
  arrival (server-sent events stay event by event); file bodies (pathsend, FileResponse) are
  compressed like streams, and go out with ``os.sendfile`` when they are not compressed.
"""

from __future__ import annotations

from typing import Any

from ..compression.codecs import StreamEncoder
from ..compression.policy import Compression, compressed_headers

ACCEL = (b"x-accel-redirect", b"x-sendfile")
_PENDING, _PASS, _COMPRESS, _REPLACED = 0, 1, 2, 3


class ResponseFilters:
    """A worker's response filters (built once from the config; see ``Server._install_extras``)."""

    __slots__ = ("compression", "internal")

    def __init__(self, compression: Compression | None, internal: Any) -> None:
        self.compression = compression
        self.internal = internal  # static_files.accel.InternalFiles or None

    def wrap(self, channel: Any, head: Any) -> FilteredChannel:
        return FilteredChannel(channel, self, head)

    def describe(self) -> list[str]:
        """Banner lines."""
        lines = []
        compression = self.compression
        if compression is not None:
            codings = ", ".join(f"{c.name} (level {c.level})" for c in compression.codecs.values()) or "none"
            cookies = "also" if compression.with_cookies else "not"
            lines.append(f"Compression: {codings}; bodies from {compression.min_size} bytes; responses that "
                         f"set cookies are {cookies} compressed")
        if self.internal is not None:
            lines.append(f"X-Accel-Redirect / X-Sendfile: {self.internal.describe()}")
        return lines


def split_accel(headers: Any) -> tuple[tuple[bytes, bytes] | None, list[tuple[bytes, bytes]]] | None:
    """``((header name, value) of the file hand-over or None, the other headers)`` when the response
    has any ``X-Accel-*`` or ``X-Sendfile`` header (all of them are removed), else None."""
    found = None
    for name, _ in headers:
        if name[:2] in (b"x-", b"X-") and (name.lower().startswith(b"x-accel-") or name.lower() == ACCEL[1]):
            found = True
            break
    if found is None:
        return None
    target: tuple[bytes, bytes] | None = None
    kept = []
    for name, value in headers:
        lname = name.lower()
        if lname.startswith(b"x-accel-") or lname == ACCEL[1]:
            if lname in ACCEL and target is None:
                target = (lname, value)
            continue
        kept.append((name, value))
    return target, kept


class FilteredChannel:
    """The channel of one request cycle when response filters are configured (see the module doc)."""

    __slots__ = ("inner", "filters", "head", "mode", "encoder", "app_cycle")

    def __init__(self, inner: Any, filters: ResponseFilters, head: Any) -> None:
        self.inner = inner
        self.filters = filters
        self.head = head
        self.mode = _PENDING
        self.encoder: StreamEncoder | None = None
        self.app_cycle: Any = None  # set by HTTPInterface.http

    def __getattr__(self, name: str) -> Any:  # client, server_addr, scheme, extensions, head_only ...
        return getattr(self.inner, name)

    @property
    def writing_paused(self) -> bool:
        return self.mode != _REPLACED and self.inner.writing_paused

    @property
    def gone(self) -> bool:
        """True once the app's response was replaced by a file (file loops stop sending into it), or
        when the real channel is gone."""
        return self.mode == _REPLACED or self.inner.gone

    def sendfile_socket(self) -> int:
        return -1  # a file body goes through the filter (body_channel is the real one when it may skip it)

    @property
    def body_channel(self) -> Any:
        """Where a file body goes after the head: the real channel (zero-copy sendfile) when nothing
        is done to the body."""
        return self.inner if self.mode == _PASS else self

    # -- the response head: every decision is taken here ---------------------------------------------
    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        filters = self.filters
        if self.mode != _PENDING:  # a second head (a 500 after a refused one): as it is
            self.inner.send_head(status, headers, body, end)
            return
        internal = filters.internal
        if internal is not None:
            split = split_accel(headers)
            if split is not None:
                target, headers = split
                if target is not None:
                    self.mode = _REPLACED
                    internal.serve(self.inner, self.head, target[0], target[1], headers)
                    if not end and self.app_cycle is not None:
                        self.app_cycle.disconnect()  # an app still streaming: its body is not wanted
                    return
        compression = filters.compression
        if compression is None:
            self.mode = _PASS
            self.inner.send_head(status, headers, body, end)
            return
        head = self.head
        plan = compression.plan(_accept(head.headers), head.method == "HEAD", status, headers)
        if plan is None:
            self.mode = _PASS
            self.inner.send_head(status, headers, body, end)
            return
        codec = plan.codec
        if codec is None:
            self.mode = _PASS
            self.inner.send_head(status, plan.headers, body, end)
            return
        if end:
            self.mode = _PASS
            if len(body) >= compression.min_size:
                data = codec.compress(body)
                if len(data) < len(body):
                    coded = compressed_headers(plan.headers, codec.name)
                    coded.append((b"content-length", b"%d" % len(data)))
                    self.inner.send_head(status, coded, data, True)
                    return
            self.inner.send_head(status, plan.headers, body, True)
            return
        self.mode = _COMPRESS
        encoder = self.encoder = codec.stream()
        self.inner.send_head(status, compressed_headers(plan.headers, codec.name), encoder.chunk(body), False)

    def send_body(self, body: bytes, end: bool) -> None:
        mode = self.mode
        if mode == _COMPRESS:
            encoder = self.encoder
            assert encoder is not None
            if end:
                self.encoder = None
                self.mode = _PASS
                self.inner.send_body(encoder.finish(body), True)
            else:
                data = encoder.chunk(body)
                if data:
                    self.inner.send_body(data, False)
        elif mode != _REPLACED:
            self.inner.send_body(body, end)

    def send_trailers(self, headers: Any) -> None:
        if self.mode == _REPLACED:
            return
        self._finish_encoder(False)
        self.inner.send_trailers(headers)

    def _finish_encoder(self, end: bool) -> None:
        encoder = self.encoder
        if encoder is not None:
            self.encoder = None
            self.mode = _PASS
            tail = encoder.finish()
            if tail or end:
                self.inner.send_body(tail, end)

    def response_complete(self, cycle: Any) -> None:
        if self.mode == _REPLACED:
            return  # the file response completes the exchange itself
        self._finish_encoder(True)
        self.inner.response_complete(cycle)

    def abort(self, reason: str) -> None:
        if self.mode != _REPLACED:
            self.inner.abort(reason)

    # -- the rest of the channel, passed through --------------------------------------------------------
    def send_informational(self, status: int, headers: Any) -> None:
        if self.mode == _PENDING:
            self.inner.send_informational(status, headers)

    async def drain(self) -> None:
        if self.mode != _REPLACED:
            await self.inner.drain()

    def want_body(self, cycle: Any) -> None:
        self.inner.want_body(cycle)

    def body_pressure(self, high: bool) -> None:
        self.inner.body_pressure(high)

    async def send_file_response(self, status: int, headers: Any, path: str, start: int = 0,
                                 end: int | None = None) -> None:
        await self.inner.send_file_response(status, headers, path, start, end, via=self)

    async def send_fd_response(self, status: int, headers: Any, fd: int, offset: int, count: int) -> None:
        await self.inner.send_fd_response(status, headers, fd, offset, count, via=self)


def _accept(headers: Any) -> bytes | None:
    """The request's ``Accept-Encoding`` (several fields joined)."""
    found: bytes | None = None
    for name, value in headers:
        if name == b"accept-encoding":
            found = value if found is None else found + b"," + value
    return found


def build_filters(config: Any, internal: Any) -> ResponseFilters | None:
    """The worker's filters, or None when nothing is configured (the usual, zero-cost case)."""
    from ..compression.policy import from_config

    compression = from_config(config)
    if compression is None and internal is None:
        return None
    return ResponseFilters(compression, internal)
