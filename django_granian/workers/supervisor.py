"""The supervisor: bind once, fork workers that share the sockets, keep them healthy, replace them
gracefully.

Single-threaded and without an event loop, so forking is safe and cheap: a ``selectors`` loop
over a signal wake-up pipe, one socketpair per worker (ready / max-requests / start-up error
messages, and EOF as a lifeline), the reload watcher's channel, plus timers (respawn delays,
kill deadlines, lifetime, RSS sampling).

Replacement is always "start the new worker, wait until it accepts, then SIGTERM the old one": the
listening socket stays open in the supervisor, so connections queue in the shared backlog and no
request is refused; the old worker finishes in-flight requests (``Server`` graceful shutdown) and
is SIGKILLed only after ``--workers-kill-timeout``. On a graceful stop the supervisor closes its copy
of the listeners right after signalling the workers, so new connections are refused instead of queued.

Signals are queued by the handler and dispatched from the loop to ``handle_<signal>`` methods:
SIGHUP rolling restart, SIGTERM/SIGINT graceful stop (a second one forces), SIGTTIN / SIGTTOU one
worker more / less, SIGCHLD only wakes the loop.

Next to this module: :mod:`.handle` (what is known about one worker), :mod:`.helpers` (the metrics
exporter and reload watcher processes), :mod:`.recycling` (lifetime, max-RSS, max-requests:
when a worker is due for replacement), :mod:`.pidfile`, :mod:`.worker` (the worker process itself).
What is left here, a little over 500 lines, is one loop and the workers' life cycle (spawn, ready,
replace, exit policy): they share the supervisor's state, and split they would be harder to follow.
"""

from __future__ import annotations

import logging
import os
import selectors
import signal
import socket
import time
from collections import deque
from typing import Any

from ..config import Config, ConfigError
from ..logs import fatal
from ..server.sockets import bind_redirect, bind_sockets, listening_lines
from .handle import RUNNING, STARTING, STOPPING, WorkerHandle
from .helpers import HANDLED_SIGNALS, WATCHER_READY, Helpers, fork
from .pidfile import PidFile
from .recycling import Recycler

logger = logging.getLogger("django_granian")

CRASH_LOOP_LIMIT = 5  # consecutive start-up failures (no worker became ready in between) before giving up


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.target = config.workers
        self.workers: dict[int, WorkerHandle] = {}
        self.sockets: list[socket.socket] = []  # the app's (HTTPS when TLS is on)
        self.redirect: list[socket.socket] = []  # the --http-redirect-port listener
        self.listening: list[socket.socket] = []  # all of them: what helper processes must close
        # --http3: one SO_REUSEPORT UDP socket per worker slot, all held here for the whole run, so the
        # kernel's 4-tuple hash keeps mapping a client to the same slot across respawns (docs/howto/http3.md)
        self.quic: list[socket.socket] = []
        self.sel = selectors.DefaultSelector()
        self.helpers = Helpers(config, self.sel, self.listening, self._supervisor_fds)
        self.recycler = Recycler(config)
        self.pending_signals: deque[int] = deque()
        self.pending_slots: dict[int, float] = {}  # slot -> when to (re)spawn
        self.waiting_for_change: set[int] = set()  # reload mode: slots to start after the next change
        self.generation = 0
        self.parallel_replace = False
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_code = 0
        self.ever_ready = False
        self.announced = False  # "Listening on ...", "Workers are accepting connections" said
        self.failures = 0  # consecutive start-up failures
        self.pid_file = PidFile(config.pid_file)
        self.metrics: Any = None  # SupervisorMetrics (respawns, worker gauge), when --metrics is on
        self._wake_r = self._wake_w = -1

    # -- start-up checks --------------------------------------------------------------------------
    def check(self) -> None:
        """Everything that can be wrong with the options, reported before anything starts."""
        config = self.config
        if config.workers < 1:
            raise ConfigError(f"--workers: {config.workers} is below the minimum 1")
        if config.reload:
            from . import reload

            reload.check_available()
            self.helpers.watch_args = (reload.watch_paths(config), reload.build_filter(config))
        if config.metrics:
            from . import metrics

            metrics.check_available()
        if config.acme_domain:
            from ..acme import check as check_acme

            check_acme(config)
        if config.http3:
            from ..server import quic

            quic.check_available()
            quic.check_config(config)
        self.pid_file.check()

    # -- main -----------------------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self.check()
            self._bind()
            self.pid_file.write()
            if self.config.metrics:
                self.helpers.start_metrics()
                self.metrics = self.recycler.metrics = self.helpers.metrics
        except ConfigError as exc:
            fatal(str(exc))
            self._cleanup()
            return 2
        if self.config.process_name:
            from .worker import set_process_title

            set_process_title(f"{self.config.process_name} supervisor")
        try:
            self._install_signals()
            if self.helpers.watch_args is not None:
                self.helpers.start_watcher()
            logger.info("Supervisor pid %d: starting %d worker(s)%s", os.getpid(), self.target,
                        " (reload on changes)" if self.config.reload else "")
            now = time.monotonic()
            for slot in range(1, self.target + 1):
                self._spawn(slot, now, "start")
            self._loop()
        finally:
            self._cleanup()
        return self.exit_code

    def _bind(self) -> None:
        from .activation import systemd_sockets

        inherited = systemd_sockets() if self.config.fd is None else None
        if inherited:
            self.redirect = bind_redirect(self.config, inherited)  # the one on that port, if systemd has it
            if not inherited:
                raise ConfigError(f"systemd socket activation passed only the --http-redirect-port socket "
                                  f"({self.config.http_redirect_port}): the HTTPS socket is missing")
            self.sockets = inherited
            logger.info("Using %d socket(s) from systemd socket activation", len(inherited))
        else:
            self.sockets = bind_sockets(self.config)
            self.redirect = bind_redirect(self.config)
        if self.config.http3:
            self.quic = [self._bind_quic() for _ in range(self.target)]
        self.listening[:] = [*self.sockets, *self.redirect, *self.quic]  # the list the helpers share

    def _bind_quic(self) -> socket.socket:
        from ..server.quic import bind_udp, http3_port

        return bind_udp(self.config.host, http3_port(self.config, self.sockets), reuse_port=True)

    def _quic_for(self, slot: int) -> list[socket.socket]:
        """The UDP socket of ``slot`` (a new one for a slot added by SIGTTIN)."""
        if not self.config.http3:
            return []
        while len(self.quic) < slot:
            sock = self._bind_quic()
            self.quic.append(sock)
            self.listening.append(sock)
        return [self.quic[slot - 1]]

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, self._on_signal)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.pending_signals.append(signum)

    # -- the loop -------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            self._handle_signals(now)
            self._reap(now)
            if self.stopping:
                if not self.workers:
                    return
                if now >= self.stop_deadline:
                    self._kill_all()
            else:
                self._timers(now)
            timeout = max(0.0, min(self._next_deadline(now), 1.0))
            for key, _ in self.sel.select(timeout):
                kind, obj = key.data
                if kind == "wake":
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except OSError:
                        pass
                elif kind == "worker":
                    self._read_worker(obj)
                elif kind == "watcher":
                    self._read_watcher()

    def _next_deadline(self, now: float) -> float:
        """Seconds until the next timer is due."""
        deadlines = [now + 1.0]
        deadlines.extend(self.pending_slots.values())
        for w in self.workers.values():
            if w.state == STOPPING:
                deadlines.append(w.kill_at)
            elif w.retry_at:
                deadlines.append(w.retry_at)
        if self.stopping:
            deadlines.append(self.stop_deadline)
        elif self.recycler.samples_rss:
            deadlines.append(self.recycler.next_sample)
        return min(deadlines) - now

    # -- signals ----------------------------------------------------------------------------------------
    def _handle_signals(self, now: float) -> None:
        while self.pending_signals:
            sig = self.pending_signals.popleft()
            getattr(self, "handle_" + signal.Signals(sig).name.lower())(now)

    def handle_sigint(self, now: float) -> None:
        """Graceful stop; a second SIGINT/SIGTERM forces the workers to stop."""
        self._stop_signal("SIGINT", now)

    def handle_sigterm(self, now: float) -> None:
        """Graceful stop, like SIGINT."""
        self._stop_signal("SIGTERM", now)

    def _stop_signal(self, name: str, now: float) -> None:
        if self.stopping:
            logger.warning("Second %s: forcing workers to stop", name)
            self._signal_all(signal.SIGINT)
        else:
            logger.info("%s received: shutting down gracefully", name)
            self.stop(now, 0)

    def handle_sighup(self, now: float) -> None:
        """Rolling restart: each worker is replaced by a new one, one at a time."""
        if not self.stopping:
            logger.info("SIGHUP received: rolling restart of %d worker(s)", self.target)
            self._new_generation(now, parallel=False)

    def handle_sigttin(self, now: float) -> None:
        """One worker more."""
        if not self.stopping:
            self.target += 1
            logger.info("SIGTTIN received: increasing workers to %d", self.target)
            self._spawn(self.target, now, "scale")

    def handle_sigttou(self, now: float) -> None:
        """One worker less (never below one)."""
        if self.stopping:
            return
        if self.target <= 1:
            logger.info("SIGTTOU received: already at one worker")
            return
        slot = self.target
        self.target -= 1
        logger.info("SIGTTOU received: decreasing workers to %d", self.target)
        self.pending_slots.pop(slot, None)
        self.waiting_for_change.discard(slot)
        for w in list(self.workers.values()):
            if w.slot == slot:
                self._stop_worker(w, now)

    def handle_sigchld(self, now: float) -> None:
        """Only wakes the loop: ``_reap`` collects the children."""

    def _new_generation(self, now: float, *, parallel: bool) -> None:
        self.generation += 1
        self.parallel_replace = parallel
        self.failures = 0
        for w in self.workers.values():
            w.retry_at = 0.0
        for slot in sorted(self.waiting_for_change | set(self.pending_slots)):
            self.pending_slots.pop(slot, None)
            if not any(w.slot == slot and w.state != STOPPING for w in self.workers.values()):
                self._spawn(slot, now, "reload" if parallel else "signal")
        self.waiting_for_change.clear()

    def stop(self, now: float, code: int) -> None:
        if self.stopping:
            return
        self.stopping = True
        if code and not self.exit_code:
            self.exit_code = code
        self.pending_slots.clear()
        self.stop_deadline = now + self.config.kill_timeout
        for w in self.workers.values():
            if w.state != STOPPING:
                self._stop_worker(w, now)
        self._stop_accepting()

    def _stop_accepting(self) -> None:
        """Close our copies of the TCP/UDS listeners (the app's and the redirect port's) once the workers were told
        to stop: they close theirs as their shutdown begins, and when nobody holds a listener any more the kernel
        refuses new connections at once. Kept open, it would queue them in a backlog nobody accepts from: each
        would hang until the last worker has drained, then be reset. (A systemd-activated socket stays open in
        systemd, which queues connections for the next start; the UDS file is removed at exit.)"""
        for sock in [*self.sockets, *self.redirect]:
            sock.close()

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.workers):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _kill_all(self) -> None:
        for w in self.workers.values():
            logger.warning("%s did not stop within %.1fs: killing it", w.name, self.config.kill_timeout)
            try:
                os.kill(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.stop_deadline = time.monotonic() + 5.0

    # -- spawning -------------------------------------------------------------------------------------
    def _supervisor_fds(self) -> list[int]:
        """Descriptors only the supervisor may hold: a child closes them right after the fork (so that
        worker channels see EOF when the supervisor dies, and the metrics port is not kept bound)."""
        fds = [self._wake_r, self._wake_w]
        fds += [w.chan.fileno() for w in self.workers.values()]
        fds += self.helpers.own_fds()
        try:
            fds.append(self.sel.fileno())  # type: ignore[attr-defined]
        except (AttributeError, NotImplementedError):  # pragma: no cover
            pass
        return [fd for fd in fds if fd >= 0]

    def _spawn(self, slot: int, now: float, reason: str, predecessor: WorkerHandle | None = None) -> WorkerHandle:
        parent_end, child_end = socket.socketpair()
        quic = self._quic_for(slot)
        close_fds = [parent_end.fileno(), *self._supervisor_fds(), *(s.fileno() for s in self.quic if s not in quic)]
        pid = fork()
        if pid == 0:  # pragma: no cover - child (covered by the end-to-end tests)
            from .worker import worker_main

            banner = slot == 1 and not self.ever_ready  # the full banner once; then one line per worker
            worker_main(self.config, slot, self.sockets, child_end, close_fds, banner, self.redirect, quic)
        child_end.close()
        parent_end.setblocking(False)
        w = WorkerHandle(pid, slot, parent_end, self.generation, now)
        w.reason = reason
        if predecessor is not None:
            w.predecessor = predecessor
            predecessor.successor = w
        self.workers[pid] = w
        self.sel.register(parent_end, selectors.EVENT_READ, ("worker", w))
        logger.debug("spawned %s (%s)", w.name, reason)
        return w

    def _stop_worker(self, w: WorkerHandle, now: float) -> None:
        w.state = STOPPING
        w.kill_at = now + self.config.kill_timeout
        try:
            os.kill(w.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    # -- messages from workers ----------------------------------------------------------------------------
    def _read_worker(self, w: WorkerHandle) -> None:
        try:
            data = w.chan.recv(8192)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_chan(w)
            return
        w.buf += data
        while b"\n" in w.buf:
            line, w.buf = w.buf.split(b"\n", 1)
            kind, text = line[:1], line[1:].decode("utf-8", "replace")
            if kind == b"R":
                self._on_ready(w, time.monotonic())
            elif kind == b"M":
                self.recycler.max_requests_reached(w)
            elif kind == b"E":
                w.error = text

    def _close_chan(self, w: WorkerHandle) -> None:
        try:
            self.sel.unregister(w.chan)
        except (KeyError, ValueError):
            pass
        w.chan.close()

    def _on_ready(self, w: WorkerHandle, now: float) -> None:
        if w.state != STARTING:
            return
        w.state = RUNNING
        w.ready_at = now
        self.failures = 0
        first = not self.ever_ready
        self.ever_ready = True
        pred = w.predecessor
        w.predecessor = None
        if pred is not None:
            pred.successor = None
            if pred.pid in self.workers and pred.state != STOPPING:
                logger.info("%s replaces %s (%s)", w.name, pred.name, pred.replace_reason or "restart")
                self._stop_worker(pred, now)
        if self.metrics is not None and w.reason not in ("start", "scale"):
            self.metrics.respawn(w.reason)
        if self.stopping:
            self._stop_worker(w, now)
        elif first and self.config.acme_domain:
            self.helpers.start_acme()  # now the workers can answer the CA's challenges
        if not self.stopping and not self.announced and \
                sum(x.state == RUNNING for x in self.workers.values()) >= self.target:
            self.announced = True  # after every first worker's "worker-N started" line: a fixed order
            for line in listening_lines(self.sockets, self.redirect, self.quic, self.config.tls_enabled):
                logger.info("%s", line)
            logger.info("Workers are accepting connections")
        self._update_worker_gauge()

    def _read_watcher(self) -> None:
        said = self.helpers.read_watcher()
        if said is None or self.stopping:
            return
        if said != WATCHER_READY:
            logger.info("Changes detected in %s: reloading", ", ".join(said)[:300])
            self._new_generation(time.monotonic(), parallel=True)
        else:
            logger.debug("reload watcher ready")
            if self.waiting_for_change:
                # a fix saved while the watcher was still starting would go unnoticed: try once more
                logger.info("Retrying the failed start once, in case the code changed while the watcher started")
                self._new_generation(time.monotonic(), parallel=True)

    # -- children that exited -------------------------------------------------------------------------------
    def _reap(self, now: float) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if self.helpers.exited(pid, code, self.stopping):
                continue
            w = self.workers.pop(pid, None)
            if w is None:
                continue
            # drain a last message (the start-up error) before closing the channel
            if w.chan.fileno() != -1:
                try:
                    w.chan.setblocking(False)
                    while True:
                        data = w.chan.recv(65536)
                        if not data:
                            break
                        w.buf += data
                except OSError:
                    pass
                for line in w.buf.split(b"\n"):
                    if line.startswith(b"E"):
                        w.error = line[1:].decode("utf-8", "replace")
                self._close_chan(w)
            if self.helpers.metrics_dir is not None:
                self.helpers.metrics_dir.process_dead(pid)
            self._worker_exited(w, code, now)
            self._update_worker_gauge()

    def _worker_exited(self, w: WorkerHandle, code: int, now: float) -> None:
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        succ, pred = w.successor, w.predecessor
        if succ is not None:
            succ.predecessor = None  # the successor now owns the slot
        if pred is not None:
            pred.successor = None
        if self.stopping or w.state == STOPPING:
            logger.debug("%s stopped (%s)", w.name, how)
            return
        if w.state == STARTING:
            reason = w.error or how
            if self.config.reload:
                if pred is not None:
                    logger.error("%s failed to start: %s -- the previous version keeps serving; waiting for "
                                 "the next change", w.name, reason)
                    pred.retry_at = 0.0
                    pred.generation = self.generation  # do not retry until the next change
                else:
                    logger.error("%s failed to start: %s -- waiting for the next change", w.name, reason)
                    self.waiting_for_change.add(w.slot)
                return
            if not self.ever_ready:
                fatal(f"{w.name} failed to start: {reason}")
                self.stop(now, code if code > 0 else 1)
                return
            self.failures += 1
            if self.failures >= CRASH_LOOP_LIMIT:
                fatal(f"{w.name} failed to start: {reason} -- {self.failures} start-up failures in a row, giving up")
                self.stop(now, code if code > 0 else 1)
                return
            delay = max(self.config.respawn_interval, 0.1 * self.failures)
            logger.error("%s failed to start: %s -- retrying in %.1fs", w.name, reason, delay)
            if pred is not None and pred.pid in self.workers:
                pred.retry_at = now + delay
            elif w.slot <= self.target:
                self.pending_slots[w.slot] = now + delay
            return
        # a running worker died on its own
        if succ is not None:
            logger.warning("%s exited (%s) while being replaced", w.name, how)
            return
        if self.config.respawn_failed_workers:
            logger.warning("%s exited unexpectedly (%s): respawning in %.1fs", w.name, how,
                           self.config.respawn_interval)
            if w.slot <= self.target:
                self.pending_slots[w.slot] = now + self.config.respawn_interval
            return
        if self.config.reload and self.config.reload_ignore_worker_failure:
            logger.warning("%s exited unexpectedly (%s): waiting for the next change", w.name, how)
            self.waiting_for_change.add(w.slot)
            return
        fatal(f"{w.name} exited unexpectedly ({how}); shutting down (use --respawn-failed-workers to respawn it)")
        self.stop(now, 1)

    # -- timers ------------------------------------------------------------------------------------------
    def _timers(self, now: float) -> None:
        for slot, due in list(self.pending_slots.items()):
            if now >= due:
                del self.pending_slots[slot]
                if slot <= self.target and not any(w.slot == slot and w.state != STOPPING
                                                   for w in self.workers.values()):
                    self._spawn(slot, now, "crash")
        config = self.config
        for w in list(self.workers.values()):
            if w.state == STOPPING and now >= w.kill_at:
                logger.warning("%s did not stop within %.1fs: killing it", w.name, config.kill_timeout)
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                w.kill_at = now + 5.0
        self.recycler.check(self.workers.values(), now)
        self._schedule_replacements(now)

    def _schedule_replacements(self, now: float) -> None:
        in_flight = sum(1 for w in self.workers.values() if w.state == STARTING and w.predecessor is not None)
        for w in sorted(self.workers.values(), key=lambda w: w.slot):
            if w.state != RUNNING or w.successor is not None or now < w.retry_at:
                continue
            stale = w.generation < self.generation
            if not stale and w.replace_reason is None:
                continue
            if w.slot > self.target:
                self._stop_worker(w, now)
                continue
            if in_flight and not (stale and self.parallel_replace):
                continue
            reason = w.replace_reason or ("reload" if self.parallel_replace else "signal")
            if w.replace_reason:
                logger.info("%s: %s reached, starting its replacement", w.name, w.replace_reason)
            self._spawn(w.slot, now, reason, predecessor=w)
            in_flight += 1

    def _update_worker_gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.set_workers(sum(1 for w in self.workers.values() if w.state == RUNNING))

    # -- exit --------------------------------------------------------------------------------------------------
    def _cleanup(self) -> None:
        self.helpers.stop()
        for sig in HANDLED_SIGNALS:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (ValueError, OSError):  # pragma: no cover
                pass
        if self._wake_w != -1:
            signal.set_wakeup_fd(-1)
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.sel.close()
        for sock in self.listening:
            sock.close()
        self.helpers.cleanup()
        config = self.config
        if config.uds and config.fd is None and self.sockets:
            try:
                os.unlink(config.uds)
            except OSError:
                pass
        self.pid_file.remove()
        logger.info("Supervisor stopped")

