"""One worker's server, the transport side: bind, listen, serve until stopped, shut down gracefully.

:class:`BaseServer` owns the event loop (``run``), the signals, the listening sockets with the right
protocol factory (:mod:`.negotiate`), the per-worker :class:`~.state.ServerState`, the banner and the
graceful shutdown of every connection. What it serves comes from :meth:`BaseServer.make_interface`:
the application side (load the app, build its interface, add the static file engine) is
``serving.py``'s :class:`~django_granian.serving.Server`, the public ``django_granian.Server``, so
this layer imports nothing from ``app/`` or ``static_files/``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Any, Callable

from ..config import Config, ConfigError
from ..logs import fatal
from .h1 import HTTP1Protocol
from .negotiate import protocol_factory
from .sockets import bind_redirect, bind_sockets, listening_lines
from .state import ServerState
from .ws import install as install_websockets

logger = logging.getLogger("django_granian")

EXIT_OK, EXIT_CONFIG, EXIT_STARTUP = 0, 2, 3
SHUTDOWN_IDLE_GRACE = 0.5  # seconds idle connections may still send a request after shutdown begins


def select_loop(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ConfigError("--loop uvloop: uvloop is not installed (pip install uvloop)") from None
        else:
            return uvloop.new_event_loop
    if name == "rloop":
        try:
            import rloop  # type: ignore[import-not-found]
        except ImportError:
            raise ConfigError("--loop rloop: rloop is not installed (pip install rloop)") from None
        return rloop.new_event_loop  # type: ignore[no-any-return]
    return asyncio.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    module = type(loop).__module__.split(".")[0]
    return "uvloop" if module == "uvloop" else ("rloop" if module == "rloop" else "asyncio")


class BaseServer:
    """Serves what :meth:`make_interface` returns (see the module docstring)."""

    def __init__(self, config: Config, app: Any = None) -> None:
        self.config = config
        self.app = app
        self.state: ServerState | None = None
        self.servers: list[asyncio.AbstractServer] = []
        self.sockets: list[socket.socket] = []
        self.started = asyncio.Event() if sys.version_info >= (3, 10) else None
        self._stop: asyncio.Event | None = None
        self._force = False
        self.exit_code = EXIT_OK
        self.redirect_sockets: list[socket.socket] = []  # the --http-redirect-port listeners
        self.interface: Any = None
        self.on_started: Callable[[BaseServer], None] | None = None
        self._own_sockets = False
        self.certs: Any = None  # ServerCertificates of the HTTPS listener
        self.states: list[ServerState] = []  # the app's state, then the --http-redirect-port listener's
        self.handles_sighup = True  # reload the certificate files now (workers leave SIGHUP to the supervisor)
        self.announces_shutdown = True  # log SIGINT/SIGTERM and "Server stopped" (a supervisor's workers do not)
        self._stopped_by_signal = False
        # --http3: the UDP socket(s) handed over by the supervisor (one per worker), else bound in serve()
        self.quic_sockets: list[socket.socket] | None = None
        self.quic_listeners: list[Any] = []

    # -- blocking entry point ---------------------------------------------------------------------
    def run(self, sockets: list[socket.socket] | None = None, redirect: list[socket.socket] | None = None) -> int:
        try:
            loop_factory = select_loop(self.config.loop)
        except ConfigError as exc:
            fatal(str(exc))
            return EXIT_CONFIG
        loop = loop_factory()
        asyncio.set_event_loop(loop)
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self.handle_exit, sig)
                except (NotImplementedError, RuntimeError):  # pragma: no cover - not main thread
                    pass
            if self.handles_sighup:
                try:
                    loop.add_signal_handler(signal.SIGHUP, self.handle_reload)
                except (NotImplementedError, RuntimeError):  # pragma: no cover - not main thread
                    pass
            return loop.run_until_complete(self._serve_catching(sockets, redirect))
        finally:
            try:
                _cancel_leftover_tasks(loop, self.config.graceful_timeout)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                if self._stopped_by_signal:
                    logger.info("Server stopped")

    async def _serve_catching(self, sockets: list[socket.socket] | None,
                              redirect: list[socket.socket] | None = None) -> int:
        try:
            await self.serve(sockets, redirect)
        except ConfigError as exc:
            fatal(str(exc))
            return EXIT_CONFIG
        return self.exit_code

    def handle_exit(self, sig: int | None = None) -> None:
        if self._stop is not None and self._stop.is_set():
            self._force = True  # second signal: stop waiting for in-flight requests
            logger.warning("Forcing shutdown")
        elif sig is not None and self.announces_shutdown and self._stop is not None:
            self._stopped_by_signal = True
            logger.info("%s received: shutting down gracefully (send it again to force)", signal.Signals(sig).name)
        self.request_stop()

    def handle_reload(self) -> None:
        """SIGHUP (single process): load changed certificate files now instead of within a second."""
        if self.certs is not None:
            logger.info("SIGHUP received: reloading the TLS certificate")
            self.certs.reload()

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    # -- the async server ---------------------------------------------------------------------------
    async def serve(self, sockets: list[socket.socket] | None = None,
                    redirect: list[socket.socket] | None = None) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.started is None or self.started._loop not in (None, loop):  # type: ignore[attr-defined]
            self.started = asyncio.Event()
        state = self.state = ServerState(config, None, loop)
        self.states = [state]
        interface = self.interface = self.make_interface(state)
        state.interface = interface
        self._install_extras(state)
        await interface.startup()
        try:
            if sockets is None:
                sockets = bind_sockets(config)
                self._own_sockets = True  # passed-in sockets (a supervisor's) belong to the caller
                redirect = bind_redirect(config) if redirect is None else redirect
            self.sockets = sockets
            ssl_context = self._ssl_context()
            factory = self._protocol_factory(state)
            for sock in sockets:
                server = await loop.create_server(factory, sock=sock, backlog=config.backlog, ssl=ssl_context)
                self.servers.append(server)
            state.ssl = ssl_context is not None
            alt_svc = await self._serve_http3(state, sockets) if config.http3 else None
            if state.ssl:
                state.set_https_fields(config.hsts, alt_svc)
            if redirect:
                await self._serve_redirect(loop, redirect)
            state.start()
            self._banner(loop)
            self.started.set()
            if self.on_started is not None:
                self.on_started(self)
            await self._stop.wait()
        finally:
            await self._shutdown(state, interface)

    def make_interface(self, state: ServerState) -> Any:
        """The application side for ``state.interface`` (``app/interface.py`` ``HTTPInterface``)."""
        raise NotImplementedError

    def _install_extras(self, state: ServerState) -> None:
        """Per-worker engines registered on the state at start-up (no-ops when not configured)."""
        if self.config.ws:
            install_websockets(state)

    def _ssl_context(self) -> Any:
        """The HTTPS listener's context; its certificate is reloaded while serving (server/certs.py)."""
        if not self.config.tls_enabled:
            return None
        from .certs import ServerCertificates

        self.certs = ServerCertificates(self.config)
        self.certs.start(asyncio.get_running_loop())
        return self.certs.base

    async def _serve_redirect(self, loop: asyncio.AbstractEventLoop, sockets: list[socket.socket]) -> None:
        """The --http-redirect-port listener: its own state (limits, timeouts) and the redirect interface."""
        from .redirect import RedirectInterface

        state = ServerState(self.config, None, loop)
        state.interface = RedirectInterface(self.config, state)
        self.states.append(state)
        for sock in sockets:
            self.servers.append(await loop.create_server(lambda: HTTP1Protocol(state), sock=sock,
                                                         backlog=self.config.backlog))
        self.redirect_sockets = sockets
        state.start()

    async def _serve_http3(self, state: ServerState, sockets: list[socket.socket]) -> str | None:
        """The --http3 UDP listener on the HTTPS certificate; returns the Alt-Svc value to advertise."""
        from . import quic

        quic.check_available()
        quic.check_config(self.config)
        from .h3 import serve_http3

        udp = self.quic_sockets
        if not udp:
            udp = self.quic_sockets = [quic.bind_udp(self.config.host, quic.http3_port(self.config, sockets))]
        certs = quic.QuicCertificates(self.config, self.certs)
        for sock in udp:
            self.quic_listeners.append(await serve_http3(state, sock, certs))
        max_age = self.config.http3_alt_svc_max_age
        return f'h3=":{udp[0].getsockname()[1]}"; ma={max_age}' if max_age else None

    def _connections(self) -> list[Any]:
        return [conn for state in self.states for conn in state.connections]

    def _protocol_factory(self, state: ServerState) -> Callable[[], asyncio.Protocol]:
        """HTTP/1.1, HTTP/2 or both (``--http auto``: h2c prior knowledge, ``Upgrade: h2c``, ALPN)."""
        return protocol_factory(state, self.config.tls_enabled)

    async def _shutdown(self, state: ServerState, interface: Any) -> None:
        for each in self.states or [state]:
            each.shutting_down = True
        if self.certs is not None:
            self.certs.stop()
        for server in self.servers:
            server.close()
        timeout = self.config.graceful_timeout
        loop = asyncio.get_running_loop()
        # A connection accepted just before the listener closed, or a keep-alive client mid-loop, may
        # have its next request in flight: serve it (with `connection: close`) rather than reset it.
        grace_end = loop.time() + min(SHUTDOWN_IDLE_GRACE, timeout)
        while self._connections() and not self._force and loop.time() < grace_end:
            await asyncio.sleep(0.01)
        for conn in self._connections():
            conn.shutdown()
        deadline = loop.time() + timeout
        while self._connections() and not self._force and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self._connections():
            logger.warning("Closing %d connection(s) still open after the graceful timeout",
                           len(self._connections()))
            for conn in self._connections():
                transport = conn.transport
                if transport is not None:
                    transport.abort()
            await asyncio.sleep(0)
        for server in self.servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 1.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass
        for listener in self.quic_listeners:
            listener.close()
        await interface.shutdown(timeout)
        for each in self.states or [state]:
            each.stop()
        if self.config.uds and self.config.fd is None and self._own_sockets:
            try:
                os.unlink(self.config.uds)
            except OSError:
                pass

    def _banner(self, loop: asyncio.AbstractEventLoop) -> None:
        """What a person looks for first: what is served and where (``Listening on URL`` last, one line
        per listener); then the options that differ from the defaults and where they came from."""
        self._banner_app(loop)
        for line in listening_lines(self.sockets, self.redirect_sockets, self.quic_sockets or [],
                                    self.config.tls_enabled):
            logger.info("%s", line)

    def _banner_app(self, loop: asyncio.AbstractEventLoop) -> None:
        from .. import __version__

        config = self.config
        py = ".".join(map(str, sys.version_info[:3]))
        http = {"auto": "HTTP/1.1 + HTTP/2", "1": "HTTP/1.1", "2": "HTTP/2"}[config.http]
        if config.http3:
            http += " + HTTP/3"
        logger.info("django-granian %s (Python %s, %s loop, pid %d)", __version__, py, loop_name(loop),
                    os.getpid())
        internal = (config.app or "").startswith("django_granian.django.")  # manage.py granian: say "Django"
        target = "" if internal else f" app {config.app or repr(self.app)}"
        logger.info("Serving %s%s over %s", self.interface.describe(), target, http)
        sources = getattr(config, "_sources", {})
        if config.config:
            from ..config_file import DJANGO_PRECEDENCE, PRECEDENCE

            logger.info("Config file %s; precedence, lowest first: %s", config.config,
                        (DJANGO_PRECEDENCE if internal else PRECEDENCE).format(file=config.config))
        changed = config.non_defaults()
        if changed:
            machine = sorted({src for k, src in sources.items() if k in changed and src.startswith("machine: ")})
            for facts in machine:  # once, not once per option the machine sized
                logger.info("Machine: %s", facts[len("machine: "):])
            opts = ", ".join(f"{OPTION_FLAG(k)}={v!r}" + (f" ({_source_label(sources[k])})" if k in sources else "")
                             for k, v in changed.items())
            logger.info("Options: %s", opts)
        filters = self.state.filters if self.state is not None else None
        if filters is not None:
            for line in filters.describe():
                logger.info("%s", line)
        if (self.interface is not None and self.interface.name == "asgi" and "django.core.handlers.asgi" in sys.modules
                and not internal):  # not manage.py's --interface asgi
            logger.info("Django's ASGI handler serves this app: every sync view and middleware pays asgiref's "
                        "thread hops. `python manage.py granian` (with \"django_granian\" in INSTALLED_APPS) "
                        "serves HTTP through Django's sync handler instead (~10x the requests per second) and "
                        "keeps WebSockets on the ASGI app; see docs/django.md.")


def _source_label(source: str) -> str:
    return "machine" if source.startswith("machine: ") else source


def _cancel_leftover_tasks(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """Tasks the app left running (background jobs, watchers) get CancelledError and up to ``timeout``
    seconds to run their cleanup, as under ``asyncio.run``, instead of being destroyed with the loop."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    timeout = max(timeout, 0.1)
    done, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=timeout))
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler({"message": "unhandled exception in a task cancelled at shutdown",
                                         "exception": task.exception(), "task": task})
    if pending:
        logger.warning("%d task(s) did not finish within %.1fs of being cancelled at shutdown", len(pending),
                       timeout)


def OPTION_FLAG(name: str) -> str:
    return "--" + name.replace("_", "-")
