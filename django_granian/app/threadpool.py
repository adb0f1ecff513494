"""The thread pool WSGI apps (and Django's fast path) run in: N threads fed by a C ``SimpleQueue``.

``concurrent.futures.ThreadPoolExecutor.submit`` allocates a Future and a work item and takes a
Python-level semaphore on every call (measured ~5% of a Django request's CPU on one core). Request
cycles need none of that: they report back to the event loop themselves, so a submitted job is a
plain callable and a failure inside it is only logged.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

logger = logging.getLogger("django_granian.app")


class ThreadPool:
    def __init__(self, threads: int, name: str = "django-granian-wsgi",
                 initializer: Callable[[], None] | None = None) -> None:
        self.size = threads
        self._initializer = initializer  # run first in every thread (like ThreadPoolExecutor's)
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._run, name=f"{name}_{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], None]) -> None:
        self._queue.put(fn)

    def _run(self) -> None:
        if self._initializer is not None:
            try:
                self._initializer()
            except Exception:  # noqa: BLE001 - the thread still serves requests
                logger.exception("request thread initializer failed")
        get = self._queue.get
        while True:
            fn = get()
            if fn is None:
                return
            try:
                fn()
            except BaseException:  # noqa: BLE001 - cycles report their own errors; never lose a thread
                logger.exception("unexpected error in a request thread")
            fn = None  # drop the cycle before blocking again

    def shutdown(self, wait: bool = False, cancel_futures: bool = False) -> None:
        """Stop the threads once the queued jobs ran (``cancel_futures``: drop the queued jobs)."""
        if cancel_futures:
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
