"""What HTTP/2 and HTTP/3 share: a connection that carries many request streams.

Both protocols turn a request stream into the same request cycle, so the steps between "a request
head arrived on stream N" and "its cycle runs" are written once, here:

- :class:`StreamChannel`, the channel of one stream (a subclass of :class:`~.channel.Channel`): its
  life-cycle flags, waking a writer blocked in ``drain()``, ``100 Continue`` when the cycle asks for
  the body, the end of the response cycle, and resetting it when the app fails;
- :class:`StreamConnection`, a mixin of the connection (``HTTP2Protocol``, ``HTTP3Connection``):
  admitting a request stream (``--limit-request-body`` from the Content-Length, a ``--backpressure``
  slot, extended CONNECT for WebSockets), starting its cycle, feeding it the body and stopping it
  past the limit, the end of the request body, ``--request-body-timeout`` for a body that stopped
  arriving, and a stream that went away.

What differs is framing and flow control, and the few hooks that reach it: how a stream is reset
(``_reject_body``, ``_reset_internal``, ``_cancel``), ended (``_end_stream``), how it gives back the
body's credit (``_release_window``) and how a waiting stream holds its receive window (``_hold_window``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..futures import wake
from ..protocol.http11 import RequestHead
from ..protocol.websocket import HandshakeError, check_h2_handshake
from .channel import Channel, copy_peer

logger = logging.getLogger("django_granian.server")

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_TOO_LARGE = b"Request body too large\n"


def websockets_enabled(server: Any) -> bool:
    """Extended CONNECT (RFC 8441, RFC 9220) is announced and accepted: ``--ws`` and an interface
    that serves WebSockets."""
    return bool(server.config.ws) and server.interface is not None and server.interface.serves_websockets


class StreamChannel(Channel):
    """One request/response exchange on a stream of a multiplexed connection."""

    __slots__ = ("conn", "stream_id", "local_done", "remote_done", "completed", "closed", "waiter", "pressure",
                 "received", "continue_sent", "no_body", "since", "wants")

    protocol = "HTTP/2"  # for log lines

    conn: Any  # the StreamConnection
    stream_id: int
    local_done: bool  # the response is complete (END_STREAM / FIN sent)
    remote_done: bool  # the request body is complete, or no longer wanted
    completed: bool  # the request cycle called response_complete()
    closed: bool  # reset by either side, or the connection is gone
    waiter: asyncio.Future | None  # drain() waiting for the peer to take more
    pressure: bool  # the request cycle has enough body buffered: the receive window stays shut
    received: int  # request body bytes so far (--limit-request-body)
    continue_sent: bool
    no_body: bool  # HEAD: the response has no body
    since: float  # --request-body-timeout: the head or the last body bytes
    wants: bool  # the request cycle has asked for the body

    def _init_stream(self, conn: Any, stream_id: int, head: RequestHead, remote_done: bool) -> None:
        """The state every stream starts with (called first by the subclasses' ``__init__``)."""
        self.conn = conn
        self.server = conn.server
        self.stream_id = stream_id
        self.head = head
        self.cycle = None
        copy_peer(self, conn)
        self.resp_status = 0
        self.resp_bytes = 0
        self.resp_left = -1
        self.head_only = self.no_body = head.method == "HEAD"
        self.local_done = False
        self.remote_done = remote_done
        self.completed = False
        self.closed = False
        self.waiter = None
        self.pressure = False
        self.received = 0
        self.t0 = 0.0
        self.continue_sent = False
        self.parked = None  # waiting for a --backpressure slot: its body so far
        self.counted = False  # holds a --backpressure slot
        self.since = 0.0
        self.wants = False

    # -- the hooks into framing ---------------------------------------------------------------------
    def _reject_body(self) -> None:
        """The request body went over --limit-request-body: stop the stream (it is not closed)."""
        raise NotImplementedError

    def _reset_internal(self) -> None:
        """The app failed: reset the stream with the protocol's internal-error code (if not closed)."""
        raise NotImplementedError

    def send_informational(self, status: int, headers: Any) -> None:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------
    def _wake(self) -> None:
        wake(self.waiter)
        self.waiter = None

    def _close(self) -> None:
        """The stream is gone (reset by either side, or the connection was lost)."""
        if self.closed:
            return
        self.closed = True
        self.local_done = self.remote_done = True
        self.parked = None  # a parked stream gives up its place in ServerState.waiting
        self._release_slot()
        self._wake()
        self.conn.stream_done(self)

    def _end_stream(self) -> None:
        """End a response whose cycle finished without ending the stream (a trailers-less end)."""
        raise NotImplementedError

    def _release_window(self) -> None:
        """The exchange is over: give back the request body's flow-control credit still held."""
        raise NotImplementedError

    def _cancel(self) -> None:
        """--request-body-timeout: reset the stream whose body stopped arriving."""
        raise NotImplementedError

    def response_complete(self, cycle: Any) -> None:
        if cycle is not self.cycle:
            return
        self.cycle = None
        self.completed = True
        self._exchange_done()
        if not self.local_done and not self.closed:
            self._end_stream()
        self._release_window()

    def want_body(self, cycle: Any) -> None:
        self.wants = True
        if self.head.expect_continue and not self.continue_sent and not self.resp_status and not self.closed:
            self.continue_sent = True
            self.send_informational(100, ())

    def abort(self, reason: str) -> None:
        logger.debug("resetting %s stream %d from %s: %s", self.protocol, self.stream_id, self.client, reason)
        cycle = self.cycle
        if cycle is not None:
            self.cycle = None
            if self.server.access_log:
                self._log_access()
        self._reset_internal()


class StreamConnection:
    """The request-stream half of an HTTP/2 or HTTP/3 connection (a mixin; see the module docstring)."""

    __slots__ = ()

    server: Any  # the worker's ServerState
    streams: dict[int, Any]
    max_body: int  # --limit-request-body, 0: none
    access_log: bool
    websocket_class: type[Any]  # the stream class of an accepted extended CONNECT

    def stream_done(self, stream: Any) -> None:
        raise NotImplementedError

    def _cancel_stalled_bodies(self, now: float) -> bool:
        """--request-body-timeout: the app waits for a request body that stopped arriving although its
        window is open (a paused window, an app that never asked, or an unsent 100 Continue never
        count): 408 if no response started, then the stream is reset and the app sees a disconnect.
        True when a stream was cancelled (there is something to send)."""
        timeout = self.server.body_timeout
        stalled = [stream for stream in self.streams.values()
                   if stream.wants and not stream.remote_done and not stream.pressure and now - stream.since > timeout
                   and stream.cycle is not None and not stream.completed
                   and not (stream.head.expect_continue and not stream.continue_sent)]
        for stream in stalled:
            logger.debug("%s request body of stream %d from %s stalled for %.0fs", stream.protocol, stream.stream_id,
                         stream.client, now - stream.since)
            cycle = stream.cycle
            stream.cycle = None
            if not stream.resp_status:
                stream.send_head(408, _TEXT, b"Request body not received in time\n", True)
            stream._exchange_done()
            if not stream.closed:
                stream._cancel()
            cycle.disconnect()
        return bool(stalled)

    def _hold_window(self, stream: Any) -> None:
        """``stream`` waits for a --backpressure slot: keep its receive window shut meanwhile."""

    def admit(self, stream: StreamChannel, head: RequestHead) -> None:
        """A request stream whose head was just decoded: answer it, park it or start its cycle."""
        server = self.server
        self.streams[stream.stream_id] = stream
        if self.access_log or server.metrics is not None:
            stream.t0 = time.perf_counter()
        if head.method == "CONNECT":
            self._on_connect(stream, head)
            return
        if self.max_body and head.content_length > self.max_body:
            stream.respond(413, _TEXT, _TOO_LARGE)
            return
        if server.slots_free <= 0:
            # --backpressure: every slot is busy. Its body is kept, and its window held, meanwhile.
            self._hold_window(stream)
            stream._park([])
            return
        self.dispatch(stream, head)

    def dispatch(self, stream: StreamChannel, head: RequestHead) -> None:
        """Start the request cycle of ``stream``, which takes a --backpressure slot."""
        server = self.server
        server.count_request()  # the stream takes a --backpressure slot (as HTTP/1.1's _dispatch does)
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

    def feed(self, stream: StreamChannel, cycle: Any, data: bytes) -> bool:
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

    def _too_large(self, stream: StreamChannel, cycle: Any) -> None:
        if not stream.resp_status:
            stream.send_head(413, _TEXT, _TOO_LARGE, True)
        stream.cycle = None
        stream._exchange_done()
        if not stream.closed:
            stream._reject_body()
        cycle.disconnect()

    def _on_connect(self, stream: StreamChannel, head: RequestHead) -> None:
        """CONNECT: extended CONNECT with ``:protocol websocket`` (RFC 8441, RFC 9220) starts a WebSocket."""
        if head.upgrade == b"websocket" and websockets_enabled(self.server):
            try:
                check_h2_handshake(head.method, "websocket", head.headers)
            except HandshakeError as exc:
                body = f"{exc.status} {exc.reason}\n".encode("latin-1", "replace")
                stream.respond(exc.status, [*exc.headers, *_TEXT], body)
                return
            ws = self.websocket_class(self, stream.stream_id, head, stream.remote_done)
            ws.t0 = stream.t0
            self.streams[ws.stream_id] = ws
            session = self.server.interface.open_websocket(ws, head)
            if session is not None and not ws.closed:
                ws.session = session
            return
        stream.respond(501 if head.upgrade is not None else 405, _TEXT, b"CONNECT is not supported\n")

    def on_end(self, stream: Any) -> None:
        """The request body of ``stream`` is complete (END_STREAM, FIN, or the trailers)."""
        if stream.remote_done:
            return
        if stream.parked is not None:
            stream.parked.append(None)  # replayed when the stream is dispatched
            return
        stream.remote_done = True
        if type(stream) is self.websocket_class:
            session = stream.session  # the peer ended its side (RFC 8441, RFC 9220: like a TCP FIN)
            if session is not None:
                session.connection_lost()
        else:
            cycle = stream.cycle
            if cycle is not None:
                cycle.end_body()
        if stream.local_done:
            self.stream_done(stream)

    def _gone(self, stream: Any) -> None:
        """``stream`` was closed under its cycle or WebSocket session: tell it the client is gone."""
        cycle = stream.cycle
        stream.cycle = None
        stream._close()
        if cycle is not None:
            cycle.disconnect()
        elif type(stream) is self.websocket_class and stream.session is not None:
            stream.session.connection_lost()
