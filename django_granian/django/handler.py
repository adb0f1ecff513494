"""The fast path: Django's synchronous handler for HTTP, the project's ASGI app for the rest.

Under an ASGI server every sync view and sync middleware of a Django project runs through asgiref's
``sync_to_async`` thread hops, which costs most of Django's throughput (~6% of its own speed
measured on one core). Django's WSGI handler runs the same project without those hops. So by
default (``--interface auto``) a worker serves:

- ordinary HTTP requests through Django's WSGI handler in the worker's thread pool (the
  :class:`~django_granian.app.wsgi.WSGIInterface` machinery: streaming ``wsgi.input``, streamed
  responses with backpressure, FileWrapper); async views still work there (Django runs them with
  ``async_to_sync``), and async ``StreamingHttpResponse`` bodies are streamed as they are produced
  (:class:`DjangoWSGICycle`);
- WebSocket sessions and the lifespan protocol through the project's ASGI application
  (``ASGI_APPLICATION`` or ``<project>/asgi.py``), in the same process and event loop.

``--interface asgi`` serves HTTP through the ASGI application as well (native async streaming,
long-polling without holding a thread); ``--interface wsgi`` serves WSGI only (no WebSockets).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from typing import Any, Iterable

from ..app.asgi import ASGIInterface
from ..app.wsgi import WSGICycle, WSGIInterface
from ..config import Config, ConfigError
from ..protocol.http11 import RequestHead


def bind_async_to_sync(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``async_to_sync`` in this pool thread run its coroutine as a task on the worker's loop.

    Django's sync handler runs an async view (and async-only middleware) through asgiref's
    ``async_to_sync``. In a thread that asgiref did not start, that makes a new thread and a new event
    loop for every call. In a thread that ``sync_to_async`` started, it schedules the coroutine on the
    thread's "main event loop" instead, and the thread waits, running any thread-sensitive
    ``sync_to_async`` work the coroutine sends back (the ORM, on this thread's own connection). This
    gives the pool threads the same marker, so an async view behaves as it does under an ASGI server,
    without the per-call thread. If a future asgiref drops the marker, the result is the old behaviour.
    """
    try:
        from asgiref.sync import SyncToAsync
    except ImportError:  # pragma: no cover - asgiref is a Django dependency
        return
    SyncToAsync.threadlocal.main_event_loop = loop
    SyncToAsync.threadlocal.main_event_loop_pid = os.getpid()


class DjangoWSGICycle(WSGICycle):
    """A WSGI request cycle that streams Django's async ``StreamingHttpResponse`` as it is produced.

    Iterated synchronously (what any WSGI server does), a ``StreamingHttpResponse`` over an async
    iterator is collected whole by ``async_to_sync`` before its first byte is sent: server-sent events
    never arrive, and an endless stream never ends. Here the pool thread pulls one chunk at a time from
    the response's async iterator, which runs on the worker's event loop, and sends it at once. The
    request keeps its pool thread until the stream ends, like a sync streaming response, and Django's
    ``close()`` (``request_finished``) still runs in that thread.
    """

    __slots__ = ("pending",)  # set only while an async stream waits for its next chunk
    pending: concurrent.futures.Future | None

    def disconnect(self) -> None:  # loop thread
        super().disconnect()
        pending = getattr(self, "pending", None)
        if pending is not None:
            pending.cancel()  # stop waiting for the next event of a stream nobody reads any more

    def _send_iterable(self, result: Iterable[bytes]) -> None:
        if getattr(result, "streaming", False) and getattr(result, "is_async", False):
            self._send_async_stream(result)
        else:
            super()._send_iterable(result)

    def _send_async_stream(self, response: Any) -> None:
        iterator = response.__aiter__()
        loop = self.loop

        async def next_chunk() -> bytes | None:
            try:
                return bytes(await iterator.__anext__())
            except StopAsyncIteration:
                return None

        try:
            while not self.disconnected:
                self.pending = asyncio.run_coroutine_threadsafe(next_chunk(), loop)
                if self.disconnected:  # it came between the check and the assignment
                    self.pending.cancel()
                try:
                    chunk = self.pending.result()
                except concurrent.futures.CancelledError:
                    return
                finally:
                    self.pending = None
                if chunk is None:
                    self._send(b"", True)
                    return
                if chunk:
                    self._send(chunk, False)
        finally:
            if not loop.is_closed():
                try:
                    asyncio.run_coroutine_threadsafe(iterator.aclose(), loop).result(timeout=10)
                except (RuntimeError, concurrent.futures.CancelledError, concurrent.futures.TimeoutError):
                    pass


class DjangoWSGIInterface(WSGIInterface):
    """``--interface wsgi``: HTTP only, through Django's WSGI handler; no WebSockets. Its pool threads run
    async views on the worker's loop (:func:`bind_async_to_sync`) and its cycles stream async responses
    (:class:`DjangoWSGICycle`); the fast path below adds the ASGI side."""

    cycle_class = DjangoWSGICycle

    def __init__(self, project: Any, server: Any, threads: int, multiprocess: bool) -> None:
        super().__init__(project.wsgi, server, threads, multiprocess=multiprocess,
                         initializer=functools.partial(bind_async_to_sync, server.loop))
        self.project = project

    def describe(self) -> str:
        return f"Django {project_label()} (WSGI, {self.threads} threads; no WebSockets: --interface wsgi)"


def project_label() -> str:
    """The project's name for the banner: ``testproject`` for ``DJANGO_SETTINGS_MODULE=testproject.settings``."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    return module[:-len(".settings")] if module.endswith(".settings") else module or "project"


class DjangoInterface(DjangoWSGIInterface):
    """HTTP through the WSGI thread pool; WebSocket and lifespan through an :class:`ASGIInterface`."""

    name = "django"

    def __init__(self, project: Any, server: Any, threads: int, multiprocess: bool, lifespan: str) -> None:
        super().__init__(project, server, threads, multiprocess)
        self.asgi = ASGIInterface(project.asgi, server, lifespan)

    def websocket(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> Any:
        return self.asgi.websocket(channel, head, client, scheme)

    async def startup(self) -> None:
        await self.asgi.startup()

    async def shutdown(self, timeout: float) -> None:
        try:
            await self.asgi.shutdown(timeout)
        finally:
            await super().shutdown(timeout)

    def describe(self) -> str:
        return (f"Django {project_label()} (fast path: HTTP via WSGI, {self.threads} threads; "
                "WebSocket + lifespan via ASGI)")


class DjangoASGIInterface(ASGIInterface):
    """``--interface asgi``: everything through the project's ASGI application."""

    def __init__(self, project: Any, server: Any, lifespan: str) -> None:
        super().__init__(project.asgi, server, lifespan)
        self.project = project

    def describe(self) -> str:
        return f"Django {project_label()} (ASGI for HTTP, WebSocket and lifespan: --interface asgi)"


def make_interface(project: Any, config: Config, state: Any) -> Any:
    kind = config.interface
    threads = config.threads_for("wsgi")
    multiprocess = config.workers > 1
    if kind == "auto":
        return DjangoInterface(project, state, threads, multiprocess, config.lifespan)
    if kind in ("asgi", "asginl"):
        return DjangoASGIInterface(project, state, "off" if kind == "asginl" else config.lifespan)
    if kind == "wsgi":
        return DjangoWSGIInterface(project, state, threads, multiprocess)
    raise ConfigError(f"--interface {kind}: a Django project is served with --interface auto (the fast path), "
                      "asgi, asginl or wsgi")
