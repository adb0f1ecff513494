"""ASGI 3 interface (``asgi`` with lifespan, ``asginl`` without)."""

from __future__ import annotations

from typing import Any

from ..protocol.http11 import RequestHead
from .http import ASGIHTTPCycle
from .interface import HTTPInterface
from .lifespan import Lifespan
from .scope import asgi_http_scope


class ASGIInterface(HTTPInterface):
    name = "asgi"

    def __init__(self, app: Any, server: Any, lifespan: str = "auto") -> None:
        super().__init__(app, server)
        self.lifespan_mode = lifespan
        self.lifespan: Lifespan | None = None

    def cycle(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> ASGIHTTPCycle:
        server = self.server
        # a memoised head is shared by other requests: the app gets its own headers list to mutate
        headers = head.headers.copy() if head.shared else head.headers
        scope = asgi_http_scope(head.method, head.http_version, scheme, head.raw_path, head.query, headers,
                                client, channel.server_addr, server.root_path, server.lifespan_state,
                                channel.extensions)
        return ASGIHTTPCycle(self.app, scope, channel, self.loop, head.chunked or head.content_length > 0)

    def websocket(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> Any:
        from .websocket import ASGIWebSocketSession, asgi_websocket_scope

        server = self.server
        scope = asgi_websocket_scope(head, client, channel.server_addr, scheme, server.root_path,
                                     server.lifespan_state, channel.extensions)
        return ASGIWebSocketSession(self.app, scope, channel, head.headers, server.config, self.loop)

    async def startup(self) -> None:
        if self.lifespan_mode == "off":
            return
        self.lifespan = Lifespan(self.app, self.lifespan_mode)
        await self.lifespan.startup()
        if self.lifespan.supported:
            self.server.lifespan_state = self.lifespan.state

    async def shutdown(self, timeout: float) -> None:
        if self.lifespan is not None:
            await self.lifespan.shutdown(timeout)

    def describe(self) -> str:
        if self.lifespan_mode == "off":
            return "ASGI (no lifespan)"
        return "ASGI"
