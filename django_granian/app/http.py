"""The ASGI HTTP request cycle: ONE implementation shared by HTTP/1.1 connections and HTTP/2 streams.

The transport side is a *channel* (see :class:`Channel`): it turns ``send_head``/``send_body`` into
protocol bytes and feeds request body pieces back with ``feed_body``/``end_body``/``disconnect``.
What every cycle does (running the app, its failures, the 500) is :class:`~.cycle.RequestCycle`.
The app coroutine is started as an eager task, so an app that answers without awaiting anything
real completes inside ``data_received`` with no loop iteration and one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Awaitable, Callable, Protocol

from ..futures import start_task
from .cycle import DONE, PENDING, STARTED, RequestCycle

logger = logging.getLogger("django_granian.app")

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

HIGH_WATER = 256 * 1024  # buffered request body before reading is paused


class ClientDisconnected(OSError):
    """Raised by ``send()`` when the client has gone away (ASGI spec: a subclass of OSError)."""


class Channel(Protocol):
    """What a transport offers one request cycle (and the interface routing it): implemented by
    ``server/channel.py`` ``Channel`` and its subclasses, the HTTP/1.1 connection and the HTTP/2 stream."""

    client: tuple[str, int] | None
    server_addr: Any
    scheme: str
    peer_trusted: bool
    extensions: dict | None
    writing_paused: bool

    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None: ...
    def send_body(self, body: bytes, end: bool) -> None: ...
    def send_trailers(self, headers: Any) -> None: ...
    def send_informational(self, status: int, headers: Any) -> None: ...
    async def send_file_response(self, status: int, headers: Any, path: str, start: int = 0,
                                 end: int | None = None) -> None: ...
    async def send_fd_response(self, status: int, headers: Any, fd: int, offset: int, count: int) -> None: ...
    # (``server/channel.py`` also takes ``via=``: a response filter around the channel, ``app/filters.py``)
    async def drain(self) -> None: ...
    def want_body(self, cycle: Any) -> None: ...
    def body_pressure(self, high: bool) -> None: ...
    def response_complete(self, cycle: Any) -> None: ...
    def abort(self, reason: str) -> None: ...
    def respond(self, status: int, headers: Any, body: bytes) -> None: ...
    def respond_fd(self, status: int, headers: Any, fd: int, offset: int, count: int) -> None: ...


_START, _BODY, _DONE = PENDING, STARTED, DONE  # no response yet; http.response.start received; done
_EMPTY_REQUEST = {"type": "http.request", "body": b"", "more_body": False}


class ASGIHTTPCycle(RequestCycle):
    __slots__ = ("status", "headers", "body", "body_sent", "trailers_expected", "buffered")

    interface = "ASGI"

    def __init__(self, app: ASGIApp, scope: dict, channel: Channel, loop: asyncio.AbstractEventLoop,
                 has_body: bool) -> None:
        self.app = app
        self.scope = scope
        self.channel = channel
        self.loop = loop
        self.state = _START
        self.status = 0
        self.headers: Any = None
        self.body: deque[bytes] | None = deque() if has_body else None
        self.body_done = not has_body
        self.body_sent = False  # the final http.request message was delivered
        self.buffered = 0
        self.waiter = None
        self.disconnected = False
        self.trailers_expected = False
        self.task = None

    # -- called by the transport -------------------------------------------------------------
    def feed_body(self, data: bytes) -> None:
        if self.body is None or self.body_done:
            return
        self.body.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER:
            self.channel.body_pressure(True)
        self._wake()

    # -- the app side ------------------------------------------------------------------------
    def run(self) -> None:
        self.task = start_task(self._run(self.app, self.scope, self.receive, self.send), self.loop)

    def _describe(self) -> str:
        return f"{self.scope['method']} {self.scope['path']}"

    def _nothing_written(self) -> bool:
        return self.state == _START or (self.state == _BODY and self.headers is not None)

    def _client_gone(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncio.CancelledError) or (isinstance(exc, ClientDisconnected) and self.disconnected)

    def _app_returned(self) -> None:
        if self.state != _DONE and not self.disconnected:
            if self._nothing_written():
                logger.error("ASGI app returned without starting a response (%s)", self._describe())
                self._send_500()
            else:
                logger.error("ASGI app returned without completing the response (%s); closing the connection",
                             self._describe())
                self.state = _DONE
                self.channel.abort("incomplete response")

    async def receive(self) -> dict:
        if self.disconnected or self.state == _DONE:
            return {"type": "http.disconnect"}
        body = self.body
        if body is None:  # no request body at all
            if not self.body_sent:
                self.body_sent = True
                return _EMPTY_REQUEST.copy()
            return await self._wait_disconnect()
        if self.body_sent:
            return await self._wait_disconnect()
        while not body and not self.body_done:
            self.channel.want_body(self)
            self.waiter = self.loop.create_future()
            await self.waiter
            if self.disconnected:
                return {"type": "http.disconnect"}
        if len(body) == 1:
            data = body.popleft()
        else:
            data = b"".join(body)
            body.clear()
        if self.buffered > HIGH_WATER:
            self.channel.body_pressure(False)
        self.buffered = 0
        more = not self.body_done
        if not more:
            self.body_sent = True
        return {"type": "http.request", "body": data, "more_body": more}

    async def _wait_disconnect(self) -> dict:
        while not self.disconnected and self.state != _DONE:
            self.waiter = self.loop.create_future()
            await self.waiter
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        mtype = message["type"]
        state = self.state
        if mtype == "http.response.body":
            if state != _BODY:
                raise self._bad(message, "http.response.body before http.response.start" if state == _START
                                else "http.response.body after the response completed")
            if self.disconnected:
                raise ClientDisconnected("client disconnected")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if type(body) is not bytes:
                if isinstance(body, (bytearray, memoryview)):
                    body = bytes(body)
                else:
                    raise self._bad(message, "'body' must be bytes")
            end = not more and not self.trailers_expected
            headers = self.headers
            if headers is not None:
                self.headers = None
                try:
                    self.channel.send_head(self.status, headers, body, end)
                except (TypeError, ValueError, AttributeError) as exc:
                    self.state = _START  # nothing was written: the failure becomes a 500
                    raise self._bad(message, f"invalid response headers: {exc}") from None
            elif body or end:
                self.channel.send_body(body, end)
            if not more:
                if self.trailers_expected:
                    return
                self.state = _DONE
                self.channel.response_complete(self)
                if self.waiter is not None:  # an app task still waiting in receive(): http.disconnect
                    self._wake()
            elif self.channel.writing_paused:
                await self.channel.drain()
                if self.disconnected:
                    raise ClientDisconnected("client disconnected")
        elif mtype == "http.response.start":
            if state != _START:
                raise self._bad(message, "http.response.start sent twice")
            status = message.get("status")
            if type(status) is not int or not 100 <= status <= 999:
                raise self._bad(message, f"invalid status {status!r}")
            if status < 200:
                raise self._bad(message, "informational statuses are sent with http.response.early_hint")
            self.status = status
            self.headers = message.get("headers", ())
            self.trailers_expected = bool(message.get("trailers", False))
            self.state = _BODY
        elif mtype == "http.response.trailers":
            if state != _BODY or not self.trailers_expected:
                raise self._bad(message, "http.response.trailers without 'trailers': True in the start message")
            if self.headers is not None:
                headers, self.headers = self.headers, None
                self.channel.send_head(self.status, headers, b"", False)
            if not message.get("more_trailers", False):
                self.channel.send_trailers(message.get("headers", ()))
                self.state = _DONE
                self.channel.response_complete(self)
                self._wake()
        elif mtype == "http.response.pathsend":
            if state != _BODY:
                raise self._bad(message, "http.response.pathsend before http.response.start")
            path = message.get("path")
            if not isinstance(path, str):
                raise self._bad(message, "'path' must be a str")
            headers, self.headers = self.headers, None
            await self.channel.send_file_response(self.status, headers, path)
            self.state = _DONE
            self.channel.response_complete(self)
            self._wake()
        elif mtype == "http.response.early_hint":
            if state != _START:
                return
            links = message.get("links", ())
            self.channel.send_informational(103, [(b"link", link) for link in links])
        else:
            raise self._bad(message, f"unexpected message type {mtype!r}")

    def _bad(self, message: dict, what: str) -> RuntimeError:
        return RuntimeError(f"invalid ASGI message from the application: {what} (message type "
                            f"{message.get('type')!r})")
