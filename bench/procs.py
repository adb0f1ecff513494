"""Start / stop server processes: CPU pinning, free ports, readiness, process-group kill."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Mapping, Sequence

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """``taskset -c <cpus> argv`` (children inherit the affinity), or argv when pinning is off/unavailable."""
    if not cpus or not shutil.which("taskset"):
        return list(argv)
    return ["taskset", "-c", cpus, *argv]


def can_pin(server_cpus: str, client_cpus: str) -> tuple[bool, str]:
    if not shutil.which("taskset"):
        return False, "taskset not found"
    allowed = os.sched_getaffinity(0)
    wanted = {int(c) for part in f"{server_cpus},{client_cpus}".split(",") for c in _expand(part)}
    if not wanted <= allowed:
        return False, f"CPUs {sorted(wanted)} not all available (allowed: {sorted(allowed)})"
    return True, ""


def _expand(part: str) -> list[int]:
    if "-" in part:
        lo, hi = part.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(part)]


def wait_for_port(host: str, port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=0.5).close()
            return
        time.sleep(0.05)
    raise TimeoutError(f"not listening on {host}:{port} after {timeout:.0f}s")


class ServerProcess:
    """A server started in its own session (process group) with output going to a log file."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: str, log_path: Path):
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=dict(env), cwd=cwd, start_new_session=True)
        self._ps: psutil.Process | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self, tail: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-tail:]
        return ""

    def cpu_seconds(self) -> float:
        """User+system CPU time of the server and all its children (workers) so far."""
        try:
            if self._ps is None:
                self._ps = psutil.Process(self.proc.pid)
            procs = [self._ps, *self._ps.children(recursive=True)]
        except psutil.Error:
            return 0.0
        total = 0.0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever is left of the group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._log.close()
