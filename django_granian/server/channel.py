"""What every request channel does, whatever its protocol.

A *channel* carries one request/response exchange between the transport and a request cycle: the
HTTP/1.1 connection (:class:`~.h1.HTTP1Protocol`, one exchange at a time) and the HTTP/2 stream
(:class:`~.h2stream.H2Stream`) are channels; what a request cycle may call on one is listed by
``Channel`` in ``app/http.py``. The subclasses do the framing and the flow control; this base holds
what the two protocols share:

- the end of an exchange (:meth:`Channel._exchange_done`): the ``--backpressure`` slot goes back,
  the access log line is written, the metrics count the response with its latency;
- responses the server makes itself, with :class:`ServerResponse` standing in for a request cycle:
  :meth:`Channel.respond` (errors, redirects, small static files) and :meth:`Channel.respond_fd`
  (big static files, streamed);
- file bodies of the app's responses (:meth:`Channel.send_file_response` for ASGI pathsend and RSGI,
  :meth:`Channel.send_fd_response` for WSGI's ``wsgi.file_wrapper``), through :mod:`.sendfile`;
- waiting for a ``--backpressure`` slot (:meth:`Channel._park`, :meth:`Channel.unpark`);
- keeping a response body to its Content-Length (:meth:`Channel._clip`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..futures import start_task
from ..logs import AccessRecord, log_access
from . import sendfile

logger = logging.getLogger("django_granian.server")


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


_ANSWERED = ServerResponse()  # the "cycle" of a response that is complete as soon as it is sent


def copy_peer(dst: Any, src: Any) -> None:
    """``dst`` talks to the same peer as ``src`` (a stream of its connection, a WebSocket taking over
    a connection): the client and server addresses, scheme, proxy trust and ASGI extensions."""
    dst.client = src.client
    dst.server_addr = src.server_addr
    dst.scheme = src.scheme
    dst.peer_trusted = src.peer_trusted
    dst.extensions = src.extensions


class Channel:
    """The protocol-neutral part of a request channel (subclasses set every attribute)."""

    __slots__ = ("server", "head", "cycle", "client", "server_addr", "scheme", "peer_trusted", "extensions",
                 "resp_status", "resp_bytes", "resp_left", "head_only", "t0", "parked", "counted")

    server: Any  # the worker's ServerState
    head: Any  # the request's RequestHead (None between HTTP/1.1 requests)
    cycle: Any  # the request cycle (app/), a ServerResponse, or None
    client: tuple[str, int] | None
    server_addr: Any
    scheme: str  # "http" or "https"
    peer_trusted: bool  # the peer may set Forwarded / X-Forwarded-* (--forwarded-allow-ips)
    extensions: dict | None  # ASGI extensions of this connection (tls), None: the default ones
    resp_status: int  # 0 until the response head was sent
    resp_bytes: int  # body bytes sent
    resp_left: int  # body bytes the Content-Length still allows, -1: no Content-Length
    head_only: bool  # a HEAD request
    t0: float  # perf_counter() when the request head was parsed (0.0 unless logged or measured)
    parked: Any  # not None while waiting for a --backpressure slot
    counted: bool  # holds a --backpressure slot

    # -- what the subclasses implement ------------------------------------------------------------
    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        raise NotImplementedError

    def send_body(self, body: bytes, end: bool) -> None:
        raise NotImplementedError

    def response_complete(self, cycle: Any) -> None:
        raise NotImplementedError

    def abort(self, reason: str) -> None:
        raise NotImplementedError

    def drain(self) -> Any:
        raise NotImplementedError

    @property
    def gone(self) -> bool:
        """The peer or the stream is gone: nothing more can be sent."""
        raise NotImplementedError

    def sendfile_socket(self) -> int:
        """The socket descriptor a file body may be ``os.sendfile``-d to right now, or -1 (TLS,
        HTTP/2, chunked framing): see :mod:`.sendfile`."""
        return -1

    def _resume(self, parked: Any) -> None:
        """Dispatch the request that waited for a --backpressure slot (``parked`` is what waited)."""
        raise NotImplementedError

    def _length_broken(self) -> None:
        """The body did not match its Content-Length (already logged)."""

    # -- shared -----------------------------------------------------------------------------------
    # (taking a slot, three lines once per request, is written out where each protocol dispatches)
    def _release_slot(self) -> None:
        if self.counted:
            self.counted = False
            self.server.release_slot()

    def _exchange_done(self) -> None:
        """The response is over (sent by the app or by the server for it): free its --backpressure
        slot, log it, count it with its latency."""
        server = self.server
        if self.counted:  # _release_slot(), inlined: this runs once per response
            self.counted = False
            server.release_slot()
        if server.access_log:
            self._log_access()
        if server.metrics is not None:
            server.metrics.response(self.resp_status, self.t0)

    def _log_access(self) -> None:
        head = self.head
        if head is None:
            return
        client = self.client
        record = AccessRecord(client[0] if client else "-", head.method, head.raw_path.decode("latin-1"),
                              head.query, "HTTP/" + head.http_version, self.scheme, self.resp_status,
                              self.resp_bytes, self.t0, head.headers)
        log_access(self.server.access_fmt, record)

    def _clip(self, body: bytes, end: bool) -> bytes:
        """``body`` cut to what the Content-Length still allows (logged, and ``_length_broken()``)."""
        left = self.resp_left
        if left >= 0:
            if len(body) > left:
                logger.error("ASGI/WSGI app sent more body than its Content-Length; truncating")
                body = body[:left]
                self._length_broken()
            self.resp_left = left = left - len(body)
            if end and left > 0:
                logger.error("response body shorter than its Content-Length")
                self._length_broken()
        return body

    def _park(self, parked: Any) -> None:
        """--backpressure: every slot of this worker is busy; wait (not fail) for one, in arrival order
        with the worker's other requests (``ServerState.waiting``); ``parked`` is kept for ``_resume``."""
        self.parked = parked
        waiting = self.server.waiting
        waiting.append(self)
        logger.debug("request from %s waits for a --backpressure slot (%d waiting)", self.client, len(waiting))

    def unpark(self) -> None:
        """Called by ServerState when a --backpressure slot is free for this parked request."""
        server = self.server
        server.slots_free += 1  # the slot reserved for us: dispatching takes it again
        parked = self.parked
        if parked is None or self.gone:
            server.wake_waiting()  # gone meanwhile: give the slot to the next one
            return
        self.parked = None
        self._resume(parked)

    # -- responses made by the server ---------------------------------------------------------------
    def respond(self, status: int, headers: Any, body: bytes) -> None:
        """A complete response produced by the server itself, not the app."""
        self.cycle = _ANSWERED
        self.send_head(status, headers, body, True)
        self.response_complete(_ANSWERED)

    def respond_fd(self, status: int, headers: Any, fd: int, offset: int, count: int) -> None:
        """A response produced by the server whose body is ``count`` bytes of ``fd`` from ``offset``
        (the static file engine's big files); the channel owns ``fd`` from now on."""
        marker = ServerResponse()
        self.cycle = marker
        try:
            self.send_head(status, headers, b"", count == 0)
        except BaseException:
            os.close(fd)
            raise
        if count == 0:
            os.close(fd)
            self.response_complete(marker)
            return
        start_task(self._stream_fd(marker, fd, offset, count), self.server.loop)

    async def _stream_fd(self, marker: ServerResponse, fd: int, offset: int, count: int) -> None:
        try:
            await sendfile.send_fd(self, fd, offset, count)
        except Exception as exc:  # noqa: BLE001
            logger.error("static file body failed: %s", exc)
            self.abort("static file body failed")
        finally:
            os.close(fd)
        self.response_complete(marker)

    # -- file bodies of the app's responses ------------------------------------------------------------
    async def send_file_response(self, status: int, headers: Any, path: str, start: int = 0,
                                 end: int | None = None, via: Any = None) -> None:
        """The whole response, its body ``path[start:end]`` (ASGI ``http.response.pathsend``, RSGI
        ``response_file``); a file that cannot be opened is answered 500 instead. ``via``: a response
        filter around this channel (``app/filters.py``) the head and body go through."""
        await sendfile.send_file_response(self if via is None else via, status, headers, path, start, end)

    async def send_fd_response(self, status: int, headers: Any, fd: int, offset: int, count: int,
                               via: Any = None) -> None:
        """The whole response, its body ``count`` bytes of ``fd`` from ``offset`` (closes ``fd``)."""
        await sendfile.send_fd_response(self if via is None else via, status, headers, fd, offset, count)
