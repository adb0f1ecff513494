"""WebSocket sessions: ONE implementation for HTTP/1.1 Upgrade and HTTP/2 extended CONNECT.

The contract (read this if you write a transport or another interface)
=====================================================================

Three parties: the *transport* (an HTTP/1.1 connection or an HTTP/2 stream, both in
``server/ws.py``), the *session* (:class:`WebSocketSession`, transport-agnostic; frames are
parsed/serialised by the sans-IO :class:`~django_granian.protocol.websocket.FrameCodec`) and the
*interface* (ASGI here: :class:`ASGIWebSocketSession`; RSGI subclasses :class:`WebSocketSession`
the same way).

1. The transport validates the opening request with
   :func:`~django_granian.protocol.websocket.check_h1_handshake` (HTTP/1.1: GET, Upgrade,
   Connection, Sec-WebSocket-Key, version 13) or ``check_h2_handshake(method, protocol, headers)``
   (HTTP/2: CONNECT + ``:protocol websocket``, version 13). On
   :class:`~django_granian.protocol.websocket.HandshakeError` it answers ``exc.status`` with
   ``exc.headers`` (426 carries ``Sec-WebSocket-Version: 13``) without involving the app.
2. It then calls ``state.interface.open_websocket(channel, head)``
   (:meth:`~django_granian.app.interface.HTTPInterface.open_websocket`), which applies
   ``--url-path-prefix`` (404) and trusted proxy headers like for HTTP requests, and asks the
   interface (``interface.websocket(channel, head, client, scheme)``) for a session. ``head`` is a
   :class:`~django_granian.protocol.http11.RequestHead` (``http_version`` "1.1" or "2"; for
   HTTP/2, method "CONNECT" and ``headers`` without pseudo-headers). It returns the session, or
   None when the request was answered without one (404 already sent and the channel closed).
3. The transport feeds the session:

   ``session.data_received(data: bytes)``  raw WebSocket bytes (HTTP/1.1: everything after the
                                           request head; HTTP/2: the stream's DATA payloads)
   ``session.connection_lost()``           the peer is gone (TCP closed, stream reset): the app
                                           gets websocket.disconnect 1006 unless a Close came first
   ``session.shutdown()``                  graceful server shutdown: Close 1001 (after accept)

4. The session drives the transport through the *ws channel*, which the transport implements:

   attributes ``client``, ``server_addr``, ``scheme`` ("http"/"https"), ``peer_trusted`` (bool),
   optional ``extensions`` (dict merged into the ASGI scope extensions, e.g. ``tls``),
   ``writing_paused`` (bool)

   ``accept(headers)``        handshake success: HTTP/1.1 writes ``101 Switching Protocols`` with
                              Upgrade/Connection/Sec-WebSocket-Accept plus ``headers``; HTTP/2 sends
                              ``:status 200`` plus ``headers`` (subprotocol, extensions, app headers)
   ``send_head(status, headers, body, end)`` / ``send_body(body, end)``
                              an HTTP response instead of the WebSocket (denial, 403, 500, 404);
                              same signatures as the HTTP request channel
   ``write(data)``            WebSocket frame bytes
   ``close()``                the WebSocket is over: flush, then end the stream (HTTP/1.1: close the
                              TCP connection; HTTP/2: END_STREAM); idempotent
   ``abort()``                drop it now (dead peer): HTTP/1.1 ``transport.abort()``; HTTP/2 RST_STREAM
   ``pause_reading()`` / ``resume_reading()``   stop/restart taking data from the peer (HTTP/2:
                              stop/restart returning flow-control credit)
   ``await drain()``          returns when ``writing_paused`` is false again or the peer is gone

   The session never touches sockets, h2 connections or timers other than ``loop.call_later``
   for the ping interval and the close handshake timeout.

Interfaces: :class:`WebSocketSession` offers ``accept(subprotocol, headers)``, ``await
receive()`` (``str``/``bytes`` message, or a :class:`~django_granian.protocol.websocket.Closed`),
``await send(data)`` (raises :class:`~django_granian.app.http.ClientDisconnected` once closed),
``close(code, reason)``, ``deny(status, headers, body, end)`` / ``deny_body(body, end)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from ..futures import start_task, wake
from ..protocol.http11 import RequestHead
from ..protocol.websocket import (
    ABNORMAL,
    GOING_AWAY,
    INTERNAL_ERROR,
    NORMAL,
    Closed,
    FrameCodec,
    negotiate_extensions,
    offered_subprotocols,
)
from .cycle import INTERNAL_ERROR_BODY, INTERNAL_ERROR_HEADERS
from .http import ClientDisconnected
from .scope import ASGI_VERSION, decode_path

logger = logging.getLogger("django_granian.app")

CONNECTING, OPEN, CLOSING, CLOSED, DENYING = 0, 1, 2, 3, 4
PENDING_LIMIT = 64 * 1024  # bytes received before accept that we buffer before pausing reading
QUEUE_HIGH = 64  # received messages the app has not consumed yet before reading is paused
QUEUE_BYTES_HIGH = 1024 * 1024
QUEUE_LOW = 8
FAIL_GRACE = 1.0  # seconds the app gets to read (and answer) the messages in front of a protocol violation

_EMPTY = [(b"content-length", b"0")]


class WebSocketSession:
    """The transport-agnostic part of one WebSocket: buffering, codec, flow control, ping, close."""

    __slots__ = ("channel", "headers", "loop", "max_size", "deflate", "ping_interval", "ping_timeout", "state",
                 "codec", "pending", "queue", "queued", "waiter", "read_paused", "final", "timer", "pongs",
                 "shutting_down", "subprotocols", "failing")

    def __init__(self, channel: Any, headers: list[tuple[bytes, bytes]], config: Any,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.channel = channel
        self.headers = headers
        self.loop = loop
        self.max_size: int = config.ws_max_message_size
        self.deflate: bool = config.ws_per_message_deflate
        self.ping_interval: float | None = config.ws_ping_interval
        self.ping_timeout: float = config.ws_ping_timeout
        self.state = CONNECTING
        self.codec: FrameCodec | None = None
        self.pending = b""
        self.queue: deque[Any] = deque()
        self.queued = 0
        self.waiter: asyncio.Future | None = None
        self.read_paused = False
        self.final: Closed | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.pongs = 0
        self.shutting_down = False
        self.subprotocols = offered_subprotocols(headers)
        # a protocol violation that came behind messages the app has not read yet: (Closed, our Close frame,
        # timer); the connection is failed once the app has read (and answered) them, see _fail_now
        self.failing: tuple[Closed, bytes, asyncio.TimerHandle] | None = None

    # -- transport -> session -----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        codec = self.codec
        if codec is None:
            if self.state == CONNECTING:
                self.pending += data
                if len(self.pending) > PENDING_LIMIT and not self.read_paused:
                    self.read_paused = True
                    self.channel.pause_reading()
            return
        if codec.closed:
            return
        items = codec.receive(data)
        failure = codec.take_failure()
        if codec.out:
            self.channel.write(codec.take_output())
        if not items:
            return
        queue = self.queue
        for item in items:
            if type(item) is Closed:
                if failure and queue and self.state == OPEN:
                    # messages that arrived before the violation are still delivered and may be answered
                    # (Autobahn|Testsuite calls failing before echoing them "non-strict"): the Close goes
                    # out once the app asks for the next message, or after FAIL_GRACE seconds
                    self.failing = (item, failure, self.loop.call_later(FAIL_GRACE, self._fail_now))
                    codec.closed = True
                    break
                if failure:
                    self.channel.write(failure)
                self._finish(item)
                break
            if self.state == OPEN:  # after our Close, data is read (to see the answer) but dropped
                queue.append(item)
                self.queued += len(item)
        if self.state == OPEN:
            if (len(queue) > QUEUE_HIGH or self.queued > QUEUE_BYTES_HIGH) and not self.read_paused:
                self.read_paused = True
                self.channel.pause_reading()
        wake(self.waiter)
        self.waiter = None

    def _fail_now(self) -> None:
        """Fail the connection for the violation held back in ``failing``."""
        failing = self.failing
        if failing is None:
            return
        self.failing = None
        item, frame, timer = failing
        timer.cancel()
        if self.state != CLOSED:
            self.channel.write(frame)
            self._finish(item)

    def connection_lost(self) -> None:
        if self.failing is not None:
            self.failing[2].cancel()
            self.failing = None
        if self.state != CLOSED:
            self._finish(Closed(ABNORMAL, ""), close=False)

    def shutdown(self) -> None:
        """Graceful server shutdown: Close 1001 now (or right after the app accepts)."""
        self.shutting_down = True
        if self.state == OPEN:
            self.close(GOING_AWAY, "server shutting down")
            self._deliver(Closed(GOING_AWAY, "server shutting down"))

    # -- internals --------------------------------------------------------------------------------
    def _deliver(self, item: Closed) -> None:
        if self.final is None:
            self.final = item
            self.queue.append(item)
        wake(self.waiter)
        self.waiter = None

    def _finish(self, item: Closed, close: bool = True) -> None:
        """The WebSocket is over (Close exchanged, protocol error, peer gone)."""
        self.state = CLOSED
        timer = self.timer
        if timer is not None:
            self.timer = None
            timer.cancel()
        if close:
            self.channel.close()
        self._deliver(item)

    def _start_pinging(self) -> None:
        if self.ping_interval:
            self.timer = self.loop.call_later(self.ping_interval, self._ping)

    def _ping(self) -> None:
        codec = self.codec
        if self.state != OPEN or codec is None:
            return
        self.pongs = codec.pongs
        self.channel.write(codec.ping(b"django-granian"))
        self.timer = self.loop.call_later(self.ping_timeout, self._check_pong)

    def _check_pong(self) -> None:
        codec = self.codec
        if self.state != OPEN or codec is None:
            return
        if codec.pongs == self.pongs:
            logger.debug("WebSocket peer did not answer a ping within %ss; dropping it", self.ping_timeout)
            self.timer = None
            self.channel.abort()
            self._finish(Closed(ABNORMAL, "ping timeout"), close=False)
            return
        assert self.ping_interval is not None
        self.timer = self.loop.call_later(max(self.ping_interval - self.ping_timeout, 0.0), self._ping)

    def _close_timeout(self) -> None:
        self.timer = None
        if self.state == CLOSING:
            self.channel.abort()
            self._finish(Closed(ABNORMAL, "close handshake timeout"), close=False)

    # -- app -> session ---------------------------------------------------------------------------
    def accept(self, subprotocol: str | None = None, headers: Any = ()) -> None:
        if self.state != CONNECTING:
            raise RuntimeError("the WebSocket handshake was already answered")
        ext_value, extensions = negotiate_extensions(self.headers, self.deflate, self.max_size)
        out: list[tuple[bytes, bytes]] = []
        if subprotocol:
            out.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
        if ext_value is not None:
            out.append((b"sec-websocket-extensions", ext_value))
        for name, value in headers:
            lname = bytes(name).lower()
            if lname in (b"sec-websocket-protocol", b"sec-websocket-extensions") and (
                    lname == b"sec-websocket-extensions" or subprotocol):
                continue  # negotiated by the server / given as the accept 'subprotocol'
            out.append((bytes(name), bytes(value)))
        self.channel.accept(out)
        self.state = OPEN
        pending, self.pending = self.pending, b""
        self.codec = FrameCodec(self.max_size, extensions)
        if self.read_paused:
            self.read_paused = False
            self.channel.resume_reading()
        self._start_pinging()
        if pending:
            self.data_received(pending)
        if self.shutting_down and self.state == OPEN:
            self.shutdown()

    async def receive(self) -> Any:
        """The next message (``str``/``bytes``) or the final :class:`Closed`."""
        queue = self.queue
        while not queue:
            if self.failing is not None:
                self._fail_now()
                continue
            if self.final is not None:
                return self.final
            waiter = self.waiter = self.loop.create_future()
            await waiter
        item = queue[0]
        if type(item) is Closed:
            return item  # stays: every later receive() reports the same disconnect
        queue.popleft()
        self.queued -= len(item)
        if self.read_paused and len(queue) <= QUEUE_LOW and self.queued < QUEUE_BYTES_HIGH // 2:
            self.read_paused = False
            if self.state != CLOSED:
                self.channel.resume_reading()
        return item

    async def send(self, data: str | bytes) -> None:
        if self.state != OPEN:
            if self.state == CONNECTING:
                raise RuntimeError("websocket.send before websocket.accept")
            raise ClientDisconnected("the WebSocket is closed")
        channel = self.channel
        channel.write(self.codec.send(data))  # type: ignore[union-attr]
        if channel.writing_paused:
            await channel.drain()

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        if self.failing is not None:
            self._fail_now()  # the peer broke the protocol: that is the Close it gets
        state = self.state
        if state == CONNECTING:
            self.deny(403, _EMPTY, b"", True)
        elif state == OPEN:
            assert self.codec is not None
            self.channel.write(self.codec.close(code, reason))
            self.state = CLOSING
            if self.read_paused:  # the peer's answering Close must get through
                self.read_paused = False
                self.channel.resume_reading()
            timer = self.timer
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_later(self.ping_timeout, self._close_timeout)

    def deny(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        """An HTTP response instead of the WebSocket (``websocket.http.response``, 403, 500)."""
        if self.state != CONNECTING:
            raise RuntimeError("the WebSocket handshake was already answered")
        self.channel.send_head(status, headers, body, end)
        self.state = DENYING
        if end:
            self._end_denial()

    def deny_body(self, body: bytes, end: bool) -> None:
        if self.state != DENYING:
            raise RuntimeError("websocket.http.response.body without a started denial response")
        self.channel.send_body(body, end)
        if end:
            self._end_denial()

    def _end_denial(self) -> None:
        self.state = CLOSED
        self.channel.close()
        self._deliver(Closed(ABNORMAL, ""))


class ASGIWebSocketSession(WebSocketSession):
    """The ASGI websocket protocol on top of :class:`WebSocketSession`."""

    __slots__ = ("app", "scope", "task", "connect_sent", "deny_status", "deny_headers")

    def __init__(self, app: Any, scope: dict, channel: Any, headers: list[tuple[bytes, bytes]], config: Any,
                 loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(channel, headers, config, loop)
        scope["subprotocols"] = self.subprotocols
        self.app = app
        self.scope = scope
        self.connect_sent = False
        self.deny_status = 0
        self.deny_headers: Any = None
        self.task = start_task(self._run(), loop)

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self.asgi_receive, self.asgi_send)
        except BaseException as exc:  # noqa: BLE001 - every failure must end the handshake/socket
            self._app_failed(exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            state = self.state
            if state == CONNECTING:
                logger.error("ASGI app returned without accepting or rejecting the WebSocket (%s)",
                             self.scope["path"])
                self._respond_500()
            elif state == OPEN:
                self.close(NORMAL)
            elif state == DENYING:
                logger.error("ASGI app returned without completing its WebSocket denial response (%s)",
                             self.scope["path"])
                self.channel.abort()
                self._finish(Closed(ABNORMAL), close=False)

    def _app_failed(self, exc: BaseException) -> None:
        state = self.state
        if isinstance(exc, asyncio.CancelledError) or (isinstance(exc, ClientDisconnected) and state == CLOSED):
            if state not in (CLOSED, CLOSING):
                self.channel.abort()
                self._finish(Closed(ABNORMAL), close=False)
            return
        logger.error("Exception in ASGI application (WebSocket %s)", self.scope["path"], exc_info=exc)
        if state == CONNECTING:
            self._respond_500()
        elif state == OPEN:
            self.close(INTERNAL_ERROR)
        elif state == DENYING:
            self.channel.abort()
            self._finish(Closed(ABNORMAL), close=False)

    def _respond_500(self) -> None:
        self.deny(500, INTERNAL_ERROR_HEADERS, INTERNAL_ERROR_BODY, True)

    async def asgi_receive(self) -> dict:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        item = await self.receive()
        if type(item) is str:
            return {"type": "websocket.receive", "text": item}
        if type(item) is bytes:
            return {"type": "websocket.receive", "bytes": item}
        return {"type": "websocket.disconnect", "code": item.code, "reason": item.reason}

    async def asgi_send(self, message: dict) -> None:
        mtype = message["type"]
        if mtype == "websocket.send":
            data = message.get("bytes")
            if data is None:
                data = message.get("text")
                if data is None:
                    raise RuntimeError("websocket.send needs 'bytes' or 'text'")
                if type(data) is not str:
                    raise TypeError("websocket.send 'text' must be str")
            elif type(data) is not bytes:
                if not isinstance(data, (bytearray, memoryview)):
                    raise TypeError("websocket.send 'bytes' must be bytes")
                data = bytes(data)
            await self.send(data)
        elif mtype == "websocket.accept":
            subprotocol = message.get("subprotocol")
            if subprotocol is not None and not isinstance(subprotocol, str):
                raise TypeError("websocket.accept 'subprotocol' must be str or None")
            self.accept(subprotocol, message.get("headers") or ())
        elif mtype == "websocket.close":
            code = message.get("code") or NORMAL
            reason = message.get("reason") or ""
            if type(code) is not int:
                raise TypeError("websocket.close 'code' must be int")
            self.close(code, reason)
        elif mtype == "websocket.http.response.start":
            if self.state != CONNECTING or self.deny_status:
                raise RuntimeError("websocket.http.response.start after the handshake was answered")
            status = message.get("status")
            if type(status) is not int or not 200 <= status <= 999 or status == 101:
                raise RuntimeError(f"invalid websocket.http.response.start status {status!r}")
            self.deny_status = status
            self.deny_headers = message.get("headers", ())
        elif mtype == "websocket.http.response.body":
            body = message.get("body", b"")
            if type(body) is not bytes:
                body = bytes(body)
            end = not message.get("more_body", False)
            if self.deny_headers is not None:
                headers, self.deny_headers = self.deny_headers, None
                self.deny(self.deny_status, headers, body, end)
            elif self.state == DENYING:
                self.deny_body(body, end)
            else:
                raise RuntimeError("websocket.http.response.body without websocket.http.response.start")
        else:
            raise RuntimeError(f"unexpected ASGI message type {mtype!r} for a WebSocket")


def asgi_websocket_scope(head: RequestHead, client: Any, server_addr: Any, scheme: str, root_path: str,
                         state: dict | None, extensions: dict | None) -> dict:
    ext: dict = {"websocket.http.response": {}}
    if extensions and "tls" in extensions:  # the connection's other extensions are HTTP-only
        ext["tls"] = extensions["tls"]
    scope = {
        "type": "websocket",
        "asgi": ASGI_VERSION,
        "http_version": head.http_version,
        "scheme": scheme,
        "path": decode_path(head.raw_path),
        "raw_path": head.raw_path,
        "query_string": head.query,
        "root_path": root_path,
        "headers": list(head.headers),  # the head may be memoised and shared: the app gets a copy
        "client": client,
        "server": server_addr,
        "subprotocols": [],
        "extensions": ext,
    }
    if state is not None:
        scope["state"] = state.copy()
    return scope
