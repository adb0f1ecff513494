"""What every application interface shares: routing a parsed request to the server or the app.

The transports call two methods of ``state.interface`` (set by the Server at start-up):

- ``http(channel, head)``, from HTTP/1.1 connections and HTTP/2 streams alike. It answers requests
  outside ``--url-path-prefix`` (404) and static files itself, applies trusted proxy headers, and
  otherwise returns a started request cycle of the concrete interface, talking to the channel
  through the response filters (``app/filters.py``) when any are configured;
- ``open_websocket(channel, head)``, from ``server/ws.py`` (HTTP/1.1 Upgrade) and ``server/h2.py``
  (HTTP/2 extended CONNECT) once the handshake is valid: the same prefix and proxy rules, then the
  interface's WebSocket session (see ``app/websocket.py``), or None when it was answered without one.
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
        # an interface serves WebSockets when it implements websocket() (ASGI, RSGI, Django's fast path)
        self.serves_websockets = type(self).websocket is not HTTPInterface.websocket

    def _route(self, channel: Any, head: RequestHead, scheme: str) -> tuple[Any, str] | None:
        """``(client, scheme)`` of a request inside ``--url-path-prefix`` (after trusted proxy
        headers), or None when it is outside (not answered yet)."""
        server = self.server
        prefix = server.prefix_bytes
        if prefix and strip_prefix(head.raw_path, prefix) is None:
            return None
        if channel.peer_trusted:
            return server.proxy.apply(head.headers, channel.client, scheme)
        return channel.client, scheme

    def http(self, channel: Any, head: RequestHead) -> Any:
        server = self.server
        if server.prefix_bytes or channel.peer_trusted:
            route = self._route(channel, head, channel.scheme)
            if route is None:
                channel.respond(404, _NOT_FOUND, b"Not Found\n")
                return None
            client, scheme = route
        else:  # nothing to route (the common case, kept free of the call)
            client, scheme = channel.client, channel.scheme
        static = server.static
        if static is not None and static.serve(channel, head):
            return None
        filters = server.filters
        if filters is not None:  # compression, X-Accel-Redirect: one filtered channel for every interface
            filtered = filters.wrap(channel, head)
            cycle = filtered.app_cycle = self.cycle(filtered, head, client, scheme)
            return cycle
        return self.cycle(channel, head, client, scheme)

    def open_websocket(self, channel: Any, head: RequestHead) -> Any:
        """A WebSocket session for a valid handshake, or None (answered 404 and closed)."""
        route = self._route(channel, head, "wss" if channel.scheme in ("https", "wss") else "ws")
        session = None
        if route is not None:
            self.server.count_request()
            session = self.websocket(channel, head, route[0], route[1])
        if session is None:
            channel.send_head(404, _NOT_FOUND, b"Not Found\n", True)
            channel.close()
        return session

    def cycle(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> Any:
        raise NotImplementedError

    def websocket(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> Any:
        """Start a WebSocket session for an accepted handshake request (HTTP/1.1 Upgrade or HTTP/2
        extended CONNECT); None when the interface has no WebSocket support (answered 404 by
        :meth:`open_websocket`). Implemented by ASGI/RSGI interfaces."""
        return None

    async def startup(self) -> None:
        """Interface-specific start-up (lifespan, thread pools)."""

    async def shutdown(self, timeout: float) -> None:
        """Interface-specific shutdown."""

    def describe(self) -> str:
        return self.name.upper()
