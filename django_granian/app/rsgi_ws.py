"""RSGI WebSocket protocol on top of the shared, transport-agnostic WebSocketSession."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..futures import start_task
from ..protocol.websocket import INTERNAL_ERROR, NORMAL, Closed
from .cycle import INTERNAL_ERROR_BODY, INTERNAL_ERROR_HEADERS
from .http import ClientDisconnected
from .websocket import CLOSED, CLOSING, CONNECTING, OPEN, WebSocketSession

logger = logging.getLogger("django_granian.app")

CLOSE, BYTES, STRING = 0, 1, 2


class WebsocketMessage:
    __slots__ = ("kind", "data")

    def __init__(self, kind: int, data: Any) -> None:
        self.kind = kind
        self.data = data

    def __repr__(self) -> str:
        return f"WebsocketMessage(kind={self.kind}, data={self.data!r})"


class RSGIWebSocketSession(WebSocketSession):
    """The RSGI ``protocol`` object for a WebSocket (``accept``/``close``) and its transport."""

    __slots__ = ("app", "scope", "task", "transport")

    def __init__(self, app: Any, scope: Any, channel: Any, headers: list[tuple[bytes, bytes]], config: Any,
                 loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(channel, headers, config, loop)
        self.app = app
        self.scope = scope
        self.transport: WebsocketTransport | None = None
        self.task = start_task(self._run(), loop)

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self)
        except BaseException as exc:  # noqa: BLE001
            state = self.state
            if isinstance(exc, (asyncio.CancelledError, ClientDisconnected)) and state in (CLOSED, CLOSING):
                return
            logger.error("Exception in RSGI application (WebSocket %s)", self.scope.path, exc_info=exc)
            if state == CONNECTING:
                self.deny(500, INTERNAL_ERROR_HEADERS, INTERNAL_ERROR_BODY, True)
            elif state == OPEN:
                WebSocketSession.close(self, INTERNAL_ERROR)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if self.state == CONNECTING:
                self.deny(403, [], b"", True)
            elif self.state == OPEN:
                WebSocketSession.close(self, NORMAL)

    # -- RSGI protocol ----------------------------------------------------------------------------
    async def accept(self) -> WebsocketTransport:  # type: ignore[override]
        if self.transport is not None:
            return self.transport
        WebSocketSession.accept(self, None, ())  # RSGI has no subprotocol selection
        self.transport = WebsocketTransport(self)
        return self.transport

    def close(self, status: int | None = None) -> tuple[int, bool]:  # type: ignore[override]
        code = NORMAL if status is None else status
        if self.state == CONNECTING:
            self.deny(403, [], b"", True)
            return code, False
        if self.state == OPEN:
            WebSocketSession.close(self, code)
            return code, True
        return code, False


class WebsocketTransport:
    __slots__ = ("_session",)

    def __init__(self, session: RSGIWebSocketSession) -> None:
        self._session = session

    async def receive(self) -> WebsocketMessage:
        item = await WebSocketSession.receive(self._session)
        if type(item) is Closed:
            return WebsocketMessage(CLOSE, None)
        if isinstance(item, str):
            return WebsocketMessage(STRING, item)
        return WebsocketMessage(BYTES, item)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(bytes(data))

    async def send_str(self, data: str) -> None:
        await self._send(str(data))

    async def _send(self, data: str | bytes) -> None:
        from .rsgi import RSGIProtocolClosed

        try:
            await WebSocketSession.send(self._session, data)
        except ClientDisconnected:
            raise RSGIProtocolClosed("the WebSocket is closed") from None

