"""One process serving one app: load it, build its interface and the static file engine, then serve.

:class:`Server` is the public ``django_granian.Server``: the transport side (loop, signals, sockets,
graceful shutdown) is :class:`~django_granian.server.server.BaseServer`; this adds the application
side, which the server layer does not import: the app (``--factory``, ``module:attr``, a path), its
interface (ASGI, ``asginl``, WSGI, RSGI, or the app's own ``__django_granian_interface__``, which the
Django integration uses), and ``--static-path-mount``. The worker process of the supervisor
subclasses it (``workers/worker.py``).

Embedding API::

    from django_granian import Config, Server, serve
    Server(Config(app="mod:app", interface="asgi")).run()      # blocking, handles signals
    await serve(app, Config(interface="asgi", port=0))          # inside a running loop
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from .app.lifespan import LifespanFailure
from .app.loader import AppLoadError, detect_interface, load_target
from .config import Config, ConfigError
from .logs import fatal
from .server.server import EXIT_CONFIG, EXIT_STARTUP, BaseServer
from .server.state import ServerState

logger = logging.getLogger("django_granian")


def build_interface(config: Config, app: Any, state: ServerState) -> Any:
    make = getattr(app, "__django_granian_interface__", None)
    if make is not None:  # the app picks its own interface (the Django integration's fast path)
        return make(config, state)
    kind = config.interface
    if kind == "auto":
        kind = detect_interface(app)
    # imported when chosen: a process loads only the interface it serves
    if kind in ("asgi", "asginl"):
        from .app.asgi import ASGIInterface

        return ASGIInterface(app, state, "off" if kind == "asginl" else config.lifespan)
    if kind == "wsgi":
        from .app.wsgi import WSGIInterface

        return WSGIInterface(app, state, config.threads_for("wsgi"), multiprocess=config.workers > 1)
    if kind == "rsgi":
        from .app.rsgi import RSGIInterface

        return RSGIInterface(app, state)
    raise ConfigError(f"--interface: unknown interface {kind!r}")


class Server(BaseServer):
    """Serve ``app`` (or ``config.app``, imported in the process that serves it)."""

    def make_interface(self, state: ServerState) -> Any:
        config = self.config
        app = self.app
        if app is None:
            if not config.app:
                raise ConfigError("no application given (APP argument, GRANIAN_APP or Config(app=...))")
            app = load_target(config.app, factory=config.factory)
        return build_interface(config, app, state)

    def _install_extras(self, state: ServerState) -> None:
        """Static files and media (``state.static``), X-Accel-Redirect and compression (``state.filters``):
        imported only when configured."""
        super()._install_extras(state)
        config = self.config
        engines: list[Any] = []
        if config.static_path_mount:
            from .static_files.files import StaticFiles

            engines.append(StaticFiles.from_config(config))
        if config.media_path_mount:
            from .static_files.media import media_files

            engines.append(media_files(config))
        if engines:
            from .static_files.files import Engines

            state.static = engines[0] if len(engines) == 1 else Engines(engines)
        internal = None
        if config.x_accel_route or config.x_sendfile_root:
            from .static_files.accel import InternalFiles

            internal = InternalFiles.from_config(config)
        if config.compress or internal is not None:
            from .app.filters import build_filters

            state.filters = build_filters(config, internal)

    async def _serve_catching(self, sockets: list[socket.socket] | None,
                              redirect: list[socket.socket] | None = None) -> int:
        try:
            return await super()._serve_catching(sockets, redirect)
        except AppLoadError as exc:
            fatal(str(exc))
            return EXIT_CONFIG
        except LifespanFailure as exc:
            fatal(f"Application startup failed: {exc}")
            return EXIT_STARTUP


async def serve(app: Any, config: Config | None = None, *, sockets: list[socket.socket] | None = None) -> None:
    """Serve ``app`` inside the running event loop until cancelled."""
    server = Server(config or Config(), app)
    try:
        await server.serve(sockets)
    except asyncio.CancelledError:
        raise
