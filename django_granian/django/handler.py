"""The fast path: Django's synchronous handler for HTTP, the project's ASGI app for the rest.

Under an ASGI server every sync view and sync middleware of a Django project runs through asgiref's
``sync_to_async`` thread hops, which costs most of Django's throughput (~6% of its own speed
measured on one core). Django's WSGI handler runs the same project without those hops. So by
default (``--interface auto``) a worker serves:

- ordinary HTTP requests through Django's WSGI handler in the worker's thread pool (the
  :class:`~django_granian.app.wsgi.WSGIInterface` machinery: streaming ``wsgi.input``, streamed
  responses with backpressure, FileWrapper); async views still work there (Django runs them with
  ``async_to_sync``);
- WebSocket sessions and the lifespan protocol through the project's ASGI application
  (``ASGI_APPLICATION`` or ``<project>/asgi.py``), in the same process and event loop.

``--interface asgi`` serves HTTP through the ASGI application as well (native async streaming,
long-polling without holding a thread); ``--interface wsgi`` serves WSGI only (no WebSockets).
"""

from __future__ import annotations

from typing import Any

from ..app.asgi import ASGIInterface
from ..app.wsgi import WSGIInterface
from ..config import Config, ConfigError
from ..protocol.http11 import RequestHead


class DjangoInterface(WSGIInterface):
    """HTTP through the WSGI thread pool; WebSocket and lifespan through an :class:`ASGIInterface`."""

    name = "django"

    def __init__(self, project: Any, server: Any, threads: int, multiprocess: bool, lifespan: str) -> None:
        super().__init__(project.wsgi, server, threads, multiprocess=multiprocess)
        self.project = project
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
        project = self.project
        return (f"Django [fast path: HTTP -> WSGI {project.wsgi_name} in {self.threads} threads; "
                f"WebSocket + lifespan -> ASGI {project.asgi_name}]")


class DjangoASGIInterface(ASGIInterface):
    """``--interface asgi``: everything through the project's ASGI application."""

    def __init__(self, project: Any, server: Any, lifespan: str) -> None:
        super().__init__(project.asgi, server, lifespan)
        self.project = project

    def describe(self) -> str:
        return f"Django [ASGI {self.project.asgi_name} for HTTP, WebSocket and lifespan (--interface asgi)]"


class DjangoWSGIInterface(WSGIInterface):
    """``--interface wsgi``: HTTP only, through Django's WSGI handler; no WebSockets."""

    def __init__(self, project: Any, server: Any, threads: int, multiprocess: bool) -> None:
        super().__init__(project.wsgi, server, threads, multiprocess=multiprocess)
        self.project = project

    def describe(self) -> str:
        return (f"Django [WSGI {self.project.wsgi_name} in {self.threads} threads; no WebSockets "
                "(--interface wsgi)]")


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
