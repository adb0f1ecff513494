"""Waking a coroutine that waits on a bare future (drain, receive, body and flow-control waiters)."""

from __future__ import annotations

import asyncio


def wake(waiter: asyncio.Future | None) -> None:
    """Resolve ``waiter`` (the coroutine awaiting it resumes) unless it is None or already done."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
