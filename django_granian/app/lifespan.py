"""The ASGI lifespan protocol (startup / shutdown, shared ``state``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .scope import ASGI_VERSION

logger = logging.getLogger("django_granian.lifespan")


class LifespanFailure(Exception):
    """Startup (or shutdown) failed; the message is the app's."""


class Lifespan:
    def __init__(self, app: Any, mode: str) -> None:
        self.app = app
        self.mode = mode  # auto | on
        self.state: dict[str, Any] = {}
        self.supported = True
        self._queue: asyncio.Queue[dict] = asyncio.Queue()
        self._events: dict[str, asyncio.Future] = {}
        self._task: asyncio.Task | None = None
        self._error: BaseException | None = None

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        try:
            await self.app(scope, self._queue.get, self._send)
        except BaseException as exc:  # noqa: BLE001
            self._error = exc
            if not self._resolved("startup"):
                if self.mode == "auto":
                    logger.debug("ASGI lifespan not supported by the app (%r); continuing without it", exc)
                    self.supported = False
                    self._resolve("startup", None)
                else:
                    self._resolve("startup", LifespanFailure(f"lifespan startup raised {exc!r}"))
            elif not self._resolved("shutdown"):
                self._resolve("shutdown", LifespanFailure(f"lifespan shutdown raised {exc!r}"))
            else:
                logger.error("exception in ASGI lifespan", exc_info=exc)
        else:
            for phase in ("startup", "shutdown"):
                if not self._resolved(phase):
                    if phase == "startup" and self.mode == "auto":
                        self.supported = False
                        self._resolve(phase, None)
                    else:
                        self._resolve(phase, LifespanFailure(f"lifespan returned before {phase} completed"))

    def _future(self, phase: str) -> asyncio.Future:
        fut = self._events.get(phase)
        if fut is None:
            fut = self._events[phase] = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_retrieve)  # a phase nobody waits for must not log "never retrieved"
        return fut

    def _resolved(self, phase: str) -> bool:
        return self._future(phase).done()

    def _resolve(self, phase: str, error: BaseException | None) -> None:
        fut = self._future(phase)
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    async def _send(self, message: dict) -> None:
        mtype = message.get("type")
        if mtype == "lifespan.startup.complete":
            self._resolve("startup", None)
        elif mtype == "lifespan.startup.failed":
            self._resolve("startup", LifespanFailure(message.get("message") or "lifespan startup failed"))
        elif mtype == "lifespan.shutdown.complete":
            self._resolve("shutdown", None)
        elif mtype == "lifespan.shutdown.failed":
            self._resolve("shutdown", LifespanFailure(message.get("message") or "lifespan shutdown failed"))
        else:
            raise RuntimeError(f"invalid ASGI lifespan message type {mtype!r}")

    async def startup(self) -> None:
        """Run startup; raises LifespanFailure (the server must then exit non-zero)."""
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._queue.put({"type": "lifespan.startup"})
        await self._future("startup")

    async def shutdown(self, timeout: float = 30.0) -> None:
        if not self.supported or self._task is None:
            return
        if self._task.done():
            return
        await self._queue.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(self._future("shutdown")), timeout)
        except asyncio.TimeoutError:
            logger.error("lifespan shutdown did not complete within %.1fs", timeout)
        except LifespanFailure as exc:
            logger.error("lifespan shutdown failed: %s", exc)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except BaseException:  # noqa: BLE001
                pass


def _retrieve(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()
