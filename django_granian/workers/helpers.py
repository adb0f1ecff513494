"""The supervisor's helper processes: the Prometheus exporter (``--metrics``), the reload watcher
(``--reload``) and the ACME process (``--acme-domain``, see ``acme/manager.py``), forked by the
supervisor next to the workers and restarted when they die.

Both are forked with :func:`fork` (signals blocked across the fork, see there) and close every
descriptor only the supervisor may hold. The exporter answers scrapes on the socket the supervisor
bound (:func:`~.metrics.serve_endpoint`); the watcher reports changed files as lines on a
socketpair (``C<name>`` per change, ``R`` once it watches), read by :meth:`Helpers.read_watcher`.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import time
from typing import Any, Callable

from ..config import Config

logger = logging.getLogger("django_granian")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD)
WATCHER_READY = "ready"  # what read_watcher() returns when the watcher reports that it watches


class Helpers:
    """The helper processes of one supervisor (``pids``: pid -> "metrics" | "reload" | "acme")."""

    def __init__(self, config: Config, sel: selectors.BaseSelector, sockets: list[socket.socket],
                 supervisor_fds: Callable[[], list[int]]) -> None:
        self.config = config
        self.sel = sel
        self.sockets = sockets
        self.supervisor_fds = supervisor_fds  # descriptors a forked child must close
        self.pids: dict[int, str] = {}
        self.metrics_dir: Any = None
        self.metrics: Any = None  # the supervisor's own samples (SupervisorMetrics)
        self.metrics_sock: socket.socket | None = None
        self.watcher_chan: socket.socket | None = None
        self.watch_args: tuple[list[str], Any] | None = None

    def own_fds(self) -> list[int]:
        return [sock.fileno() for sock in (self.watcher_chan, self.metrics_sock) if sock is not None]

    # -- the metrics exporter ---------------------------------------------------------------------
    def start_metrics(self) -> None:
        from .metrics import MultiprocDir, SupervisorMetrics, bind_endpoint

        self.metrics_sock = bind_endpoint(self.config)
        self.metrics_dir = MultiprocDir()
        self.metrics = SupervisorMetrics()
        self._fork_metrics()
        host, port = self.metrics_sock.getsockname()[:2]
        logger.info("Prometheus metrics on http://%s:%d/metrics", host, port)

    def _fork_metrics(self) -> None:
        sock = self.metrics_sock
        assert sock is not None
        close_fds = [fd for fd in self.supervisor_fds() if fd != sock.fileno()]
        close_fds += [s.fileno() for s in self.sockets]

        def main() -> None:
            from .metrics import serve_endpoint

            serve_endpoint(sock)

        self._fork_child("metrics", close_fds, main)

    # -- the ACME process ---------------------------------------------------------------------------
    def start_acme(self) -> None:
        """The one process that talks to the ACME CA: obtains and renews the certificate."""
        def main() -> None:
            from ..acme.manager import acme_main

            acme_main(self.config)

        self._fork_child("acme", [*self.supervisor_fds(), *(s.fileno() for s in self.sockets)], main)

    def _fork_child(self, name: str, close_fds: list[int], main: Callable[[], None]) -> None:
        """Fork a helper that runs ``main()`` with the supervisor's signals undone and ``close_fds``
        closed; it exits 0 when ``main`` returns (or exits), 1 on an exception (traceback on stderr)."""
        pid = fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                from .worker import reset_signals

                reset_signals()
                close_all(close_fds)
                if self.config.process_name:
                    from .worker import set_process_title

                    set_process_title(f"{self.config.process_name} {name}")
                main()
            except SystemExit:
                pass
            except BaseException:  # noqa: BLE001
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        self.pids[pid] = name

    # -- the reload watcher -----------------------------------------------------------------------
    def start_watcher(self) -> None:
        assert self.watch_args is not None
        parent_end, child_end = socket.socketpair()
        close_fds = [parent_end.fileno(), *self.supervisor_fds(), *(s.fileno() for s in self.sockets)]
        pid = fork()
        if pid == 0:  # pragma: no cover - child
            from .reload import watcher_main
            from .worker import reset_signals

            reset_signals()
            close_all(close_fds)
            watcher_main(self.config, child_end, *self.watch_args)
        child_end.close()
        parent_end.setblocking(False)
        self.watcher_chan = parent_end
        self.sel.register(parent_end, selectors.EVENT_READ, ("watcher", None))
        self.pids[pid] = "reload"
        paths, _ = self.watch_args
        logger.info("Watching %s for changes", ", ".join(paths))

    def read_watcher(self) -> list[str] | str | None:
        """What the watcher said: the names of changed files, :data:`WATCHER_READY`, or None."""
        chan = self.watcher_chan
        if chan is None:
            return None
        try:
            data = chan.recv(65536)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            self._drop_watcher_chan()
            return None
        lines = data.split(b"\n")
        names = [line[1:].decode("utf-8", "replace") for line in lines if line.startswith(b"C")]
        if names:
            return names
        return WATCHER_READY if b"R" in lines else None

    def _drop_watcher_chan(self) -> None:
        chan = self.watcher_chan
        if chan is not None:
            self.sel.unregister(chan)
            chan.close()
            self.watcher_chan = None

    # -- life and death ---------------------------------------------------------------------------
    def exited(self, pid: int, code: int, stopping: bool) -> bool:
        """``pid`` exited: True if it was a helper (restarted unless the supervisor is stopping)."""
        name = self.pids.pop(pid, None)
        if name is None:
            return False
        if stopping:
            return True
        logger.error("the %s process exited (code %s): restarting it", name, code)
        if name == "metrics":
            self._fork_metrics()
        elif name == "acme":
            self.start_acme()
        elif name == "reload" and self.watch_args is not None:
            self._drop_watcher_chan()
            self.start_watcher()
        return True

    def stop(self) -> None:
        """SIGTERM every helper, wait up to 3 s, SIGKILL the rest; close the helpers' sockets."""
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 3.0
        while self.pids and time.monotonic() < deadline:
            for pid in list(self.pids):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    self.pids.pop(pid, None)
            time.sleep(0.01)
        for pid in list(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass

    def cleanup(self) -> None:
        if self.metrics_sock is not None:
            self.metrics_sock.close()
        if self.metrics_dir is not None:
            self.metrics_dir.cleanup()


def close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def fork() -> int:
    """fork() with our signals blocked, so that a signal cannot reach the child while it still has the
    supervisor's handlers (the child unblocks them in ``reset_signals``; the parent right away)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return pid
