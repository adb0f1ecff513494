"""Coroutines and futures without per-request machinery: starting eager tasks, waking waiters.

Imported by every layer (server, app, static files): nothing here knows about any of them.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

EAGER = sys.version_info >= (3, 12)


def start_task(coro: Any, loop: asyncio.AbstractEventLoop) -> asyncio.Task:
    """Run ``coro`` eagerly (3.12+): no loop iteration unless it really suspends."""
    if EAGER:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    return loop.create_task(coro)


def wake(waiter: asyncio.Future | None) -> None:
    """Resolve ``waiter`` (the coroutine awaiting it resumes) unless it is None or already done."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
