"""RSGI (Granian's Rust Server Gateway Interface), served by this Python server.

Apps are called as ``await app.__rsgi__(scope, protocol)`` (or ``await app(scope, protocol)``);
``__rsgi_init__(loop)`` / ``__rsgi_del__(loop)`` run at worker start / stop. The HTTP protocol
object is the request cycle itself and talks to the same *channel* as the ASGI cycle, so HTTP/1.1,
HTTP/2, TLS, static files and the access log behave identically under every interface.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, AsyncIterator, Iterator

from ..futures import start_task
from ..protocol.http11 import RequestHead
from .cycle import DONE, PENDING, STARTED, RequestCycle
from .encoding import encode_headers
from .interface import HTTPInterface
from .scope import decode_path

logger = logging.getLogger("django_granian.app")

RSGI_VERSION = "1.5"
_VERSIONS = {"1.0": "1", "1.1": "1.1", "2": "2"}


class RSGIProtocolError(RuntimeError):
    """The app used the protocol object wrongly (e.g. two responses)."""


class RSGIProtocolClosed(RuntimeError):
    """The client went away (sending on a closed stream or websocket)."""


class Headers:
    """Read-only, case-insensitive view of the request headers (str keys and values)."""

    __slots__ = ("_raw", "_map")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._map: dict[str, list[str]] | None = None

    def _index(self) -> dict[str, list[str]]:
        index = self._map
        if index is None:
            index = self._map = {}
            for name, value in self._raw:
                index.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
        return index

    def get(self, key: str, default: Any = None) -> Any:
        values = self._index().get(key.lower())
        return values[0] if values else default

    def get_all(self, key: str) -> list[str]:
        return list(self._index().get(key.lower(), ()))

    def __getitem__(self, key: str) -> str:
        values = self._index().get(key.lower())
        if not values:
            raise KeyError(key)
        return values[0]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index()

    def __iter__(self) -> Iterator[str]:
        return iter(self._index())

    def __len__(self) -> int:
        return len(self._index())

    def keys(self) -> list[str]:
        return list(self._index())

    def values(self) -> list[str]:
        return [v[0] for v in self._index().values()]

    def items(self) -> list[tuple[str, str]]:
        return [(k, v[0]) for k, v in self._index().items()]

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class Scope:
    __slots__ = ("proto", "rsgi_version", "http_version", "server", "client", "scheme", "method", "path",
                 "query_string", "headers", "authority", "_raw_path")

    def __init__(self, proto: str, head: RequestHead, client: Any, server: Any, scheme: str) -> None:
        self.proto = proto
        self.rsgi_version = RSGI_VERSION
        self.http_version = _VERSIONS.get(head.http_version, head.http_version)
        self.server = _addr(server)
        self.client = _addr(client)
        self.scheme = scheme
        self.method = head.method
        self._raw_path = head.raw_path
        self.path = decode_path(head.raw_path)
        self.query_string = head.query.decode("latin-1")
        self.headers = Headers(head.headers)
        self.authority = head.host.decode("latin-1") if head.host is not None else None

    def __repr__(self) -> str:
        return f"<RSGI Scope {self.proto} {self.method} {self.path}>"


def _addr(addr: Any) -> str:
    if not addr:
        return ""
    host, port = addr[0], addr[1]
    return f"{host}:{port}" if port is not None else str(host)


def _encode_headers(headers: Any) -> Any:
    try:
        return encode_headers(headers)[0]
    except TypeError as exc:
        raise RSGIProtocolError(f"response {exc}") from None


_PENDING, _STREAMING, _DONE = PENDING, STARTED, DONE  # no response yet; response_stream() began; done


class RSGIHTTPCycle(RequestCycle):
    """One HTTP request: the RSGI ``protocol`` object handed to the app."""

    __slots__ = ("body", "stream_head", "consumed")

    interface = "RSGI"

    def __init__(self, app: Any, scope: Scope, channel: Any, loop: asyncio.AbstractEventLoop,
                 has_body: bool) -> None:
        self.app = app
        self.scope = scope
        self.channel = channel
        self.loop = loop
        self.state = _PENDING
        self.body: deque[bytes] = deque()
        self.body_done = not has_body
        self.waiter: asyncio.Future | None = None
        self.disconnected = False
        self.stream_head: tuple[int, list] | None = None
        self.task: asyncio.Task | None = None
        self.consumed = False

    # -- transport side -------------------------------------------------------------------------
    def feed_body(self, data: bytes) -> None:
        self.body.append(data)
        self._wake()

    async def _wait(self) -> None:
        self.waiter = self.loop.create_future()
        await self.waiter

    # -- the RequestCycle hooks -------------------------------------------------------------------
    def run(self) -> None:
        self.task = start_task(self._run(self.app, self.scope, self), self.loop)

    def _describe(self) -> str:
        return f"{self.scope.method} {self.scope.path}"

    def _nothing_written(self) -> bool:
        return self.state == _PENDING

    def _client_gone(self, exc: BaseException) -> bool:
        return isinstance(exc, (asyncio.CancelledError, RSGIProtocolClosed)) and self.disconnected

    def _app_returned(self) -> None:
        if self.state == _STREAMING:
            self._finish_stream()
        elif self.state == _PENDING and not self.disconnected:
            logger.error("RSGI app returned without a response (%s)", self._describe())
            self._send_500()

    # -- request body -----------------------------------------------------------------------------
    async def __call__(self) -> bytes:
        """The whole request body."""
        if self.consumed:
            raise RSGIProtocolError("the request body was already consumed")
        self.consumed = True
        chunks = []
        while True:
            while self.body:
                chunks.append(self.body.popleft())
            if self.body_done:
                break
            if self.disconnected:
                raise RSGIProtocolClosed("client disconnected while sending the request body")
            self.channel.want_body(self)
            await self._wait()
        return b"".join(chunks)

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self.consumed:
            raise RSGIProtocolError("the request body was already consumed")
        self.consumed = True
        return self._iter_body()

    async def _iter_body(self) -> AsyncIterator[bytes]:
        while True:
            if self.body:
                yield self.body.popleft()
                continue
            if self.body_done:
                return
            if self.disconnected:
                raise RSGIProtocolClosed("client disconnected while sending the request body")
            self.channel.want_body(self)
            await self._wait()

    async def client_disconnect(self) -> None:
        while not self.disconnected:
            await self._wait()

    # -- responses ----------------------------------------------------------------------------------
    def _begin(self) -> None:
        if self.state != _PENDING:
            raise RSGIProtocolError("a response was already sent")
        if self.disconnected:
            raise RSGIProtocolClosed("client disconnected")

    def _complete(self, status: int, headers: list, body: bytes) -> None:
        self.state = _DONE
        self.channel.send_head(status, headers, body, True)
        self.channel.response_complete(self)

    def response_empty(self, status: int, headers: list[tuple[str, str]]) -> None:
        self._begin()
        self._complete(status, _encode_headers(headers), b"")

    def response_str(self, status: int, headers: list[tuple[str, str]], body: str) -> None:
        self._begin()
        self._complete(status, _encode_headers(headers), body.encode("utf-8"))

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self._begin()
        self._complete(status, _encode_headers(headers), bytes(body))

    def response_file(self, status: int, headers: list[tuple[str, str]], file: str) -> None:
        self.response_file_range(status, headers, file, 0, None)

    def response_file_range(self, status: int, headers: list[tuple[str, str]], file: str, start: int,
                            end: int | None) -> None:
        self._begin()
        encoded = _encode_headers(headers)
        self.state = _DONE
        start_task(self._send_file(status, encoded, file, start, end), self.loop)

    async def _send_file(self, status: int, headers: list, path: str, start: int, end: int | None) -> None:
        try:
            await self.channel.send_file_response(status, headers, path, start, end)
        except FileNotFoundError:
            logger.error("RSGI response_file: %r does not exist", path)
            self._send_500()
            return
        except BaseException as exc:  # noqa: BLE001
            logger.error("RSGI file response failed (%s)", path, exc_info=exc)
            self.channel.abort("file response failed")
            return
        self.channel.response_complete(self)

    def response_stream(self, status: int, headers: list[tuple[str, str]]) -> StreamTransport:
        self._begin()
        self.stream_head = (status, _encode_headers(headers))
        self.state = _STREAMING
        return StreamTransport(self)

    def _finish_stream(self) -> None:
        self.state = _DONE
        if self.disconnected:
            return
        head = self.stream_head
        if head is not None:
            self.stream_head = None
            self.channel.send_head(head[0], head[1], b"", True)
        else:
            self.channel.send_body(b"", True)
        self.channel.response_complete(self)

    async def _send_chunk(self, data: bytes) -> None:
        if self.state != _STREAMING:
            raise RSGIProtocolError("the stream response is finished")
        if self.disconnected:
            raise RSGIProtocolClosed("client disconnected")
        head = self.stream_head
        if head is not None:
            self.stream_head = None
            self.channel.send_head(head[0], head[1], data, False)
        elif data:
            self.channel.send_body(data, False)
        if self.channel.writing_paused:
            await self.channel.drain()
            if self.disconnected:
                raise RSGIProtocolClosed("client disconnected")


class StreamTransport:
    __slots__ = ("_cycle",)

    def __init__(self, cycle: RSGIHTTPCycle) -> None:
        self._cycle = cycle

    async def send_bytes(self, data: bytes) -> None:
        await self._cycle._send_chunk(bytes(data))

    async def send_str(self, data: str) -> None:
        await self._cycle._send_chunk(data.encode("utf-8"))


class RSGIInterface(HTTPInterface):
    name = "rsgi"

    def __init__(self, app: Any, server: Any) -> None:
        target = app
        callback = getattr(app, "__rsgi__", app)
        super().__init__(callback, server)
        self.target = target

    def cycle(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> RSGIHTTPCycle:
        scope = Scope("http", head, client, channel.server_addr, scheme)
        return RSGIHTTPCycle(self.app, scope, channel, self.loop, head.chunked or head.content_length > 0)

    def websocket(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> Any:
        from .rsgi_ws import RSGIWebSocketSession

        scope = Scope("ws", head, client, channel.server_addr, scheme)
        return RSGIWebSocketSession(self.app, scope, channel, head.headers, self.server.config, self.loop)

    async def startup(self) -> None:
        init = getattr(self.target, "__rsgi_init__", None)
        if init is not None:
            init(self.loop)

    async def shutdown(self, timeout: float) -> None:
        fini = getattr(self.target, "__rsgi_del__", None)
        if fini is not None:
            try:
                fini(self.loop)
            except Exception:  # noqa: BLE001
                logger.exception("exception in __rsgi_del__")
