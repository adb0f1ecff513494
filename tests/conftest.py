"""Shared fixtures: start the real server (a subprocess) on a free 127.0.0.1 port and talk to it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A running ``python -m django_granian`` (or any command) with its captured output."""

    def __init__(self, proc: subprocess.Popen, port: int | None, log_path: Path, host: str = "127.0.0.1"):
        self.proc = proc
        self.port = port
        self.host = host
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged(self, text: str) -> Callable[[], str]:
        """A check for ``core_client.wait_until``: the output so far, once it contains ``text``."""

        def check() -> str:
            out = self.output()
            return out if text in out else ""

        return check

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def wait_for_port(host: str, port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before accepting connections")
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=0.5).close()
            return
        time.sleep(0.05)
    raise TimeoutError(f"server did not listen on {host}:{port} within {timeout}s")


@contextlib.contextmanager
def start_server(args: list[str], *, env: dict | None = None, cwd: str | os.PathLike | None = None,
                 port: int | None = None, wait: bool = True, cmd: list[str] | None = None,
                 tmp_path: Path | None = None) -> Iterator[ServerProcess]:
    """Start ``python -m django_granian ARGS --port <free>`` and stop it (SIGTERM) afterwards.

    ``args`` must not contain --port unless ``port`` is given; pass ``cmd`` to run another command
    (e.g. ``manage.py granian``) which gets ``--port`` appended as well.
    """
    port = free_port() if port is None else port
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(APPS), full_env.get("PYTHONPATH", "")])
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if env:
        full_env.update(env)
    base = cmd if cmd is not None else [sys.executable, "-m", "django_granian"]
    argv = [*base, *args]
    if "--uds" not in args and "--fd" not in args:
        argv += ["--port", str(port)]
    log_dir = tmp_path or Path(os.environ.get("TMPDIR", "/tmp"))
    log_path = Path(log_dir) / f"server-{port}-{time.monotonic_ns()}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd or str(ROOT),
                            start_new_session=True)
    server = ServerProcess(proc, port, log_path)
    try:
        if wait:
            try:
                wait_for_port("127.0.0.1", port, proc)
            except Exception as exc:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{exc}; output:\n{server.output()}") from None
        yield server
    finally:
        server.stop()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stray workers of a failed test
        log.close()


def http_request(port: int, data: bytes, *, timeout: float = 5.0, read_until_close: bool = True) -> bytes:
    """Send raw bytes, return everything the server sends until it closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not read_until_close:
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


@pytest.fixture
def server_factory(tmp_path: Path):
    """``with server_factory(["--interface", "asgi", "app:app"]) as srv: ...``"""

    def factory(args: list[str], **kw):
        kw.setdefault("tmp_path", tmp_path)
        return start_server(args, **kw)

    return factory
