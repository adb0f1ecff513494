"""What every coroutine request cycle does (ASGI in ``http.py``, RSGI in ``rsgi.py``), written once.

A request cycle runs the app for one request on the channel it is handed (``http.py`` ``Channel``):

- ``run()`` starts :meth:`RequestCycle._run` with the interface's call of the app as an eager task
  (no loop iteration unless the app really awaits);
- the transport calls ``feed_body`` (per interface), :meth:`~RequestCycle.end_body` and
  :meth:`~RequestCycle.disconnect`, which wake the app if it waits in ``waiter``;
- when the app fails, :meth:`~RequestCycle._app_failed` decides once for every interface: the client
  went away (abort quietly), nothing was written yet (log, answer :data:`INTERNAL_ERROR`), the
  response had started (log, abort the connection) or was complete (log).

:data:`INTERNAL_ERROR_HEADERS` / :data:`INTERNAL_ERROR_BODY` are the one 500 response the app layer
sends for an app that failed (HTTP cycles, WSGI, WebSocket handshakes).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from ..futures import wake

logger = logging.getLogger("django_granian.app")

INTERNAL_ERROR_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"))
INTERNAL_ERROR_BODY = b"Internal Server Error"

# ``state`` of a cycle: no response yet; a response started (its head may still be held back); done
PENDING, STARTED, DONE = 0, 1, 2


class RequestCycle:
    """The interface-neutral part of one request cycle (subclasses set every attribute)."""

    __slots__ = ("app", "scope", "channel", "loop", "state", "task", "waiter", "disconnected", "body_done")

    interface = "?"  # for log lines: "ASGI", "RSGI"
    app: Any
    scope: Any
    channel: Any  # http.Channel
    loop: asyncio.AbstractEventLoop
    state: int
    task: asyncio.Task | None
    waiter: asyncio.Future | None  # the app waits here for body or disconnect
    disconnected: bool  # the client is gone
    body_done: bool  # the whole request body has been fed

    # -- what the interfaces implement ----------------------------------------------------------
    def run(self) -> None:
        """Start the app: ``self.task = start_task(self._run(app, scope, ...), self.loop)`` with the
        interface's arguments (``_run`` makes the call, so that a call that raises is a failure too)."""
        raise NotImplementedError

    def _nothing_written(self) -> bool:
        """True while no byte of the response has reached the channel (a 500 can still be sent)."""
        raise NotImplementedError

    def _app_returned(self) -> None:
        """The app returned normally: finish or fix up what it left open."""
        raise NotImplementedError

    def _client_gone(self, exc: BaseException) -> bool:
        """``exc`` only says that the client went away (nothing to log)."""
        raise NotImplementedError

    def _describe(self) -> str:
        """``METHOD /path`` for log lines."""
        raise NotImplementedError

    # -- called by the transport -------------------------------------------------------------
    def end_body(self) -> None:
        self.body_done = True
        self._wake()

    def disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        wake(self.waiter)
        self.waiter = None

    # -- running the app ---------------------------------------------------------------------
    async def _run(self, app: Callable[..., Awaitable[None]], scope: Any, second: Any, third: Any = None) -> None:
        """Run ``app(scope, second)`` (RSGI: the protocol) or ``app(scope, second, third)`` (ASGI:
        receive, send) to its end: fixed arguments, as a ``*args`` tuple would cost ~1% of a request."""
        try:
            await (app(scope, second) if third is None else app(scope, second, third))
        except BaseException as exc:  # noqa: BLE001 - every app failure must end the response
            self._app_failed(exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if self.state != DONE:  # (the common case, kept free of the call)
                self._app_returned()

    def _app_failed(self, exc: BaseException) -> None:
        if self._client_gone(exc):
            if self.state != DONE:
                self.state = DONE
                self.channel.abort("client disconnected")
            return
        if self._nothing_written():
            logger.error("Exception in %s application (%s)", self.interface, self._describe(), exc_info=exc)
            self._send_500()
        elif self.state != DONE:
            logger.error("Exception in %s application after the response started (%s); closing the connection",
                         self.interface, self._describe(), exc_info=exc)
            self.state = DONE
            self.channel.abort("application error")
        else:
            logger.error("Exception in %s application after the response completed (%s)", self.interface,
                         self._describe(), exc_info=exc)

    def _send_500(self) -> None:
        self.state = DONE
        if not self.disconnected:
            self.channel.send_head(500, INTERNAL_ERROR_HEADERS, INTERNAL_ERROR_BODY, True)
            self.channel.response_complete(self)
