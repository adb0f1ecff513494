"""The worker process: a :class:`Server` on the supervisor's sockets, talking back over a socketpair.

The supervisor forks (no event loop or thread exists in it), and the child calls :func:`worker_main`,
which never returns. Messages to the supervisor are single lines on the channel:

- ``R`` the worker is accepting connections (its predecessor may now be stopped)
- ``M`` max requests reached: please replace me (the worker keeps serving until SIGTERM)
- ``E<text>`` why the worker could not start (sent just before exiting)

The channel also works the other way as a lifeline: when the supervisor dies the worker reads EOF
and shuts down gracefully instead of lingering as an orphan.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import sys
import traceback
from typing import Any, NoReturn

from ..config import Config
from ..logs import set_fatal_sink
from ..server.server import BaseServer
from ..server.state import ServerState
from ..serving import Server

logger = logging.getLogger("django_granian")

MSG_READY, MSG_MAX_REQUESTS, MSG_ERROR = b"R", b"M", b"E"


class _LastError(logging.Handler):
    """Remembers the last error logged during start-up, to report it to the supervisor."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message = ""
        self.fatal = ""  # a logs.fatal() error: the supervisor prints it (once, with the worker's name)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.message = record.getMessage()
        except Exception:  # noqa: BLE001
            self.message = str(record.msg)

    def set_fatal(self, message: str) -> None:
        self.fatal = message


class WorkerServer(Server):
    """A Server that reports readiness, counts requests and records metrics for the supervisor."""

    def __init__(self, config: Config, worker: Worker) -> None:
        super().__init__(config)
        self.worker = worker
        self.on_started = worker.started
        self.handles_sighup = False  # SIGHUP is the supervisor's (rolling restart)

    def _install_extras(self, state: ServerState) -> None:
        super()._install_extras(state)
        self.worker.install(state, self)

    def _banner(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.worker.banner:
            super()._banner(loop)  # once; the other workers (and respawns) say one line
        else:
            logger.info("worker-%d (pid %d) started", self.worker.slot, os.getpid())


class Worker:
    def __init__(self, config: Config, slot: int, chan: socket.socket, banner: bool = True) -> None:
        self.config = config
        self.slot = slot
        self.chan = chan
        self.ready = False
        self.banner = banner
        self.state: ServerState | None = None
        self.server: WorkerServer | None = None
        self.metrics: Any = None
        self.max_requests = 0
        if config.workers_max_requests:
            self.max_requests = config.workers_max_requests + random.randint(0, config.workers_max_requests_jitter)
        self._flush_handle: asyncio.TimerHandle | None = None

    def send(self, kind: bytes, text: str = "") -> None:
        line = kind + text.replace("\n", " ").encode("utf-8", "replace")[:4000] + b"\n"
        try:
            self.chan.sendall(line)
        except OSError:
            pass

    # -- hooks called by WorkerServer ---------------------------------------------------------------
    def install(self, state: ServerState, server: WorkerServer) -> None:
        self.state, self.server = state, server
        if self.max_requests:
            state.on_request = self._on_request
        if self.config.metrics:
            from .metrics import WorkerMetrics

            self.metrics = state.metrics = WorkerMetrics(self.slot)
        loop = state.loop
        self.chan.setblocking(False)
        loop.add_reader(self.chan.fileno(), self._on_chan)

    def started(self, server: BaseServer) -> None:
        self.ready = True
        self.send(MSG_READY)
        if self.metrics is not None:
            self._schedule_flush()

    def _on_request(self) -> None:
        state = self.state
        if state is not None and state.requests >= self.max_requests:
            state.on_request = None
            logger.info("worker-%d (pid %d) served %d requests, asking for a replacement", self.slot, os.getpid(),
                        state.requests)
            self.send(MSG_MAX_REQUESTS)

    def _on_chan(self) -> None:
        try:
            data = self.chan.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the supervisor is gone: do not linger as an orphan
            if self.state is not None:
                self.state.loop.remove_reader(self.chan.fileno())
            logger.warning("worker-%d (pid %d): supervisor went away, shutting down", self.slot, os.getpid())
            if self.server is not None:
                self.server.request_stop()

    def _schedule_flush(self) -> None:
        state = self.state
        if state is None:
            return
        self._flush_handle = state.loop.call_later(self.config.metrics_scrape_interval, self._flush_tick)

    def _flush_tick(self) -> None:
        self.flush_metrics()
        if self.state is not None and not self.state.shutting_down:
            self._schedule_flush()

    def flush_metrics(self) -> None:
        if self.metrics is not None and self.state is not None:
            try:
                self.metrics.flush(self.state.requests)
            except Exception:  # noqa: BLE001 - metrics must never take a worker down
                logger.exception("metrics flush failed")

    # -- process main ---------------------------------------------------------------------------------
    def run(self, sockets: list[socket.socket], redirect: list[socket.socket] | None = None,
            quic: list[socket.socket] | None = None) -> int:
        catcher = _LastError()
        root = logging.getLogger("django_granian")
        root.addHandler(catcher)
        set_fatal_sink(catcher.set_fatal)
        code = 1
        try:
            self.server = WorkerServer(self.config, self)
            self.server.quic_sockets = quic or None  # --http3: this slot's UDP socket
            code = self.server.run(sockets, redirect or [])
        except Exception as exc:  # noqa: BLE001 - report anything that kills the worker
            logger.error("worker-%d crashed: %s\n%s", self.slot, exc, traceback.format_exc())
            catcher.message = f"{type(exc).__name__}: {exc}"
            code = 1
        finally:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self.flush_metrics()
            root.removeHandler(catcher)
            set_fatal_sink(None)
        if not self.ready:
            self.send(MSG_ERROR, catcher.fatal or catcher.message
                      or f"worker exited with code {code} before accepting connections")
            return code or 1
        return code


def reset_signals() -> None:
    """Undo the supervisor's signal handling in a freshly forked worker."""
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):  # pragma: no cover
        pass
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    # Job control and hang-up belong to the supervisor (SIGTTIN/SIGTTOU would otherwise stop us).
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def set_process_title(title: str) -> None:
    """setproctitle when installed; else the Linux thread name (what ps -o comm / top show)."""
    try:
        import setproctitle  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            libc.prctl(15, title.encode()[:15] + b"\0", 0, 0, 0)  # PR_SET_NAME
        except (OSError, AttributeError):  # pragma: no cover - not Linux
            pass
        return
    setproctitle.setproctitle(title)


def worker_main(config: Config, slot: int, sockets: list[socket.socket], chan: socket.socket,
                close_fds: list[int], banner: bool = True,
                redirect: list[socket.socket] | None = None, quic: list[socket.socket] | None = None) -> NoReturn:
    """Entry point of a forked worker; exits the process."""
    code = 1
    try:
        reset_signals()
        for fd in close_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if config.process_name:
            set_process_title(f"{config.process_name} worker-{slot}")
        # uvloop (libuv): accept one connection per wake-up and yield, so that one worker does not
        # grab a whole burst of connections from the shared socket (see docs/workers.md).
        os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
        code = Worker(config, slot, chan, banner).run(sockets, redirect, quic)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
