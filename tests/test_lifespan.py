"""ASGI lifespan on the real server: auto / on / off, startup failure exits non-zero with the app's
message, shutdown runs on SIGTERM, state reaches request scopes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import APPS, ROOT, free_port
from .core_client import Conn, get


def run_to_exit(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": f"{ROOT}:{APPS}", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "django_granian", *args, "--port", str(free_port())],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failure_exits_non_zero_with_the_message(mode: str) -> None:
    result = run_to_exit(["--interface", "asgi", "--lifespan", mode, "core_apps:lifespan_failing"])
    assert result.returncode != 0
    assert "database unreachable: core-test" in result.stdout + result.stderr
    assert "never retrieved" not in result.stdout + result.stderr


def test_lifespan_on_requires_support() -> None:
    result = run_to_exit(["--interface", "asgi", "--lifespan", "on", "core_apps:lifespan_raising"])
    assert result.returncode != 0
    assert "no lifespan here" in result.stdout + result.stderr


@pytest.mark.parametrize("app", ["core_apps:lifespan_raising", "core_apps:lifespan_returning"])
def test_lifespan_auto_tolerates_apps_without_it(server_factory, app: str) -> None:  # type: ignore[no-untyped-def]
    with server_factory(["--interface", "asgi", "--lifespan", "auto", app]) as srv:
        with Conn(srv.port) as c:
            assert json.loads(c.request(get("/scope")).body)["state"] == {}


def test_startup_state_and_shutdown(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with server_factory(["--interface", "asgi", "core_apps:app"], env={"CORE_MARK_DIR": str(tmp_path)}) as srv:
        assert (tmp_path / "startup").exists()
        with Conn(srv.port) as c:
            assert json.loads(c.request(get("/scope")).body)["state"]["token"] == "s3cret"
        assert not (tmp_path / "shutdown").exists()
        assert srv.stop(signal.SIGTERM) == 0
    assert (tmp_path / "shutdown").exists()


def test_lifespan_off(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with server_factory(["--interface", "asgi", "--lifespan", "off", "core_apps:lifespan_asserting"],
                        env={"CORE_MARK_DIR": str(tmp_path)}) as srv:
        with Conn(srv.port) as c:
            assert c.request(get("/x")).status == 200
    assert not (tmp_path / "lifespan-called").exists()
