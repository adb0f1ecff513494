"""What every application interface shares: routing a parsed request to the server or the app.

``http(channel, head)`` is called by HTTP/1.1 connections and HTTP/2 streams alike. It answers
requests outside ``--url-path-prefix`` (404) and static files itself, applies trusted proxy headers,
and otherwise returns a started request cycle of the concrete interface, talking to the channel
through the response filters (``app/filters.py``) when any are configured.
"""

from __future__ import annotations

from typing import Any

from ..protocol.http11 import RequestHead
from .scope import strip_prefix

_NOT_FOUND = [(b"content-type", b"text/plain; charset=utf-8")]


class HTTPInterface:
    name = "base"

    def __init__(self, app: Any, server: Any) -> None:
        self.app = app
        self.server = server  # ServerState
        self.loop = server.loop

    def http(self, channel: Any, head: RequestHead) -> Any:
        server = self.server
        prefix = server.prefix_bytes
        if prefix and strip_prefix(head.raw_path, prefix) is None:
            channel.respond(404, _NOT_FOUND, b"Not Found\n")
            return None
        static = server.static
        if static is not None and static.serve(channel, head):
            return None
        client = channel.client
        scheme = channel.scheme
        if channel.peer_trusted:
            client, scheme = server.proxy.apply(head.headers, client, scheme)
        filters = server.filters
        if filters is not None:  # compression, X-Accel-Redirect: one filtered channel for every interface
            filtered = filters.wrap(channel, head)
            cycle = filtered.app_cycle = self.cycle(filtered, head, client, scheme)
            return cycle
        return self.cycle(channel, head, client, scheme)

    def cycle(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> Any:
        raise NotImplementedError

    def websocket(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> Any:
        """Start a WebSocket session for an accepted handshake request (HTTP/1.1 Upgrade or HTTP/2
        extended CONNECT); None when the interface has no WebSocket support (answered 404/426 by the
        caller). Implemented by ASGI/RSGI interfaces."""
        return None

    async def startup(self) -> None:
        """Interface-specific start-up (lifespan, thread pools)."""

    async def shutdown(self, timeout: float) -> None:
        """Interface-specific shutdown."""

    def describe(self) -> str:
        return self.name.upper()
