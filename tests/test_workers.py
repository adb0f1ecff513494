"""The multi-process supervisor, end to end: real processes, real signals, real clients."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

from django_granian import sizing
from django_granian.config import Config
from django_granian.workers import needs_supervisor
from tests.conftest import APPS, ROOT, free_port, start_server
from tests.core_client import wait_until

pytestmark = pytest.mark.timeout(90)

APP = ["--interface", "asgi", "workers_app:app"]


def children(proc: subprocess.Popen) -> list[int]:
    try:
        return sorted(p.pid for p in psutil.Process(proc.pid).children() if p.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return []


def ready_workers(srv, n: int, timeout: float = 30.0) -> list[int]:
    """The worker pids once ``n`` workers exist and each has logged that it is accepting."""

    def check():
        pids = children(srv.proc)
        out = srv.output()
        return len(pids) == n and all(f"pid {p})" in out for p in pids) and pids

    return wait_until(check, timeout=timeout, what=f"{n} ready workers")


def get(url: str, timeout: float = 10.0) -> httpx.Response:
    return httpx.get(url, timeout=timeout)


def env_path() -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(ROOT), str(APPS)])}


def run_to_exit(args: list[str], timeout: float = 30.0, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **env_path(), **(env or {}))
    return subprocess.run([sys.executable, "-m", "django_granian", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=str(ROOT))


# -- unit: sizing and routing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("cpus", "avail_mib", "expected"), [
    (2, 24000, 2), (8, 1024, 4), (8, 100, 1), (1, 100000, 1), (16, 100000, 16),
])
def test_auto_workers_rule(monkeypatch, cpus, avail_mib, expected):
    monkeypatch.setattr(sizing, "cpu_count", lambda: cpus)
    monkeypatch.setattr(sizing, "available_memory_mib", lambda: avail_mib)
    assert sizing.auto_workers() == expected


def test_workers_auto_parses():
    from django_granian.cli import config_from_args

    config = config_from_args(["--workers", "auto", "app:app"], environ={})
    assert config.workers == sizing.auto_workers() >= 1


@pytest.mark.parametrize(("opts", "expected"), [
    ({}, False), ({"workers": 2}, True), ({"workers_max_requests": 10}, True), ({"workers_lifetime": 60}, True),
    ({"workers_max_rss": 100}, True), ({"respawn_failed_workers": True}, True), ({"metrics": True}, True),
    ({"reload": True}, True), ({"pid_file": "/tmp/x.pid"}, True),
])
def test_needs_supervisor(opts, expected):
    assert needs_supervisor(Config(app="a:b", **opts)) is expected


# -- processes ------------------------------------------------------------------------------------------------
def test_n_workers_share_the_socket(tmp_path):
    with start_server([*APP, "--workers", "3"], tmp_path=tmp_path) as srv:
        pids = ready_workers(srv, 3)
        seen = {int(get(srv.url).text) for _ in range(30)}
        assert seen <= set(pids)
        assert srv.stop() == 0
        output = srv.output()
    assert output.count("Serving ASGI app") == 1  # the full banner once, one line for the other workers
    assert output.count("started") >= 2
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def test_sigkill_worker_is_respawned(tmp_path):
    args = [*APP, "--workers", "2", "--respawn-failed-workers", "--respawn-interval", "0.3"]
    with start_server(args, tmp_path=tmp_path) as srv:
        before = ready_workers(srv, 2)
        victim = before[0]
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        after = wait_until(lambda: (c := children(srv.proc)) and len(c) == 2 and victim not in c and c,
                           what="respawned worker")
        assert time.monotonic() - t0 >= 0.3  # the respawn interval is honoured
        assert before[1] in after
        wait_until(lambda: "exited unexpectedly (signal SIGKILL): respawning" in srv.output(), what="log")
        new = (set(after) - set(before)).pop()
        wait_until(lambda: str(new) in {get(srv.url).text for _ in range(20)}, what="the new worker serving")
        assert srv.stop() == 0


def test_worker_death_without_respawn_stops_the_server(tmp_path):
    with start_server([*APP, "--workers", "2"], tmp_path=tmp_path) as srv:
        pids = ready_workers(srv, 2)
        os.kill(pids[0], signal.SIGKILL)
        assert srv.proc.wait(30) == 1
        assert "exited unexpectedly (signal SIGKILL)" in srv.output()
        assert "--respawn-failed-workers" in srv.output()


def test_max_requests_replaces_the_worker_without_failures(tmp_path):
    args = [*APP, "--workers", "1", "--workers-max-requests", "5", "--workers-max-requests-jitter", "3"]
    with start_server(args, tmp_path=tmp_path) as srv:
        first = ready_workers(srv, 1)[0]
        seen = []
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=10) as client:
            while len(set(seen)) < 3 and time.monotonic() < deadline:  # replaced twice
                r = client.get(srv.url)
                assert r.status_code == 200
                seen.append(int(r.text))
        assert seen[0] == first
        assert len(set(seen)) == 3
        wait_until(lambda: "max-requests reached" in srv.output(), what="log")


def test_max_rss_replaces_the_worker(tmp_path):
    args = [*APP, "--workers-max-rss", "150", "--rss-sample-interval", "0.2", "--rss-samples", "2"]
    with start_server(args, tmp_path=tmp_path) as srv:
        first = ready_workers(srv, 1)[0]
        assert get(srv.url + "/alloc?mb=200").status_code == 200
        assert psutil.Process(first).memory_info().rss > 150 * 2**20
        wait_until(lambda: first not in children(srv.proc) and children(srv.proc), what="replacement")
        assert int(get(srv.url).text) != first
        assert "limit 150 MiB): replacing it" in srv.output()


def test_lifetime_replaces_workers_and_keeps_serving(tmp_path):
    with start_server([*APP, "--workers", "2", "--workers-lifetime", "1"], tmp_path=tmp_path) as srv:
        before = set(ready_workers(srv, 2))
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=10) as client:
            while time.monotonic() < deadline:
                assert client.get(srv.url).status_code == 200
                now = set(children(srv.proc))
                if len(now) == 2 and not now & before:
                    break
            else:
                raise AssertionError("workers were not replaced after their lifetime")
        assert "lifetime reached" in srv.output()


class Load:
    """Client threads hammering the server; every failure is recorded."""

    def __init__(self, url: str, threads: int = 3) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self.pids: set[int] = set()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]

    def run(self, i: int) -> None:
        # thread 0 opens a new connection per request, the others use keep-alive pools
        client = httpx.Client(timeout=15, limits=httpx.Limits(max_keepalive_connections=0 if i == 0 else 4))
        with client:
            while not self.stop.is_set():
                try:
                    r = client.get(self.url)
                    with self.lock:
                        if r.status_code == 200:
                            self.ok += 1
                            self.pids.add(int(r.text))
                        else:
                            self.failures.append(f"status {r.status_code}")
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(repr(exc))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_sighup_rolling_restart_under_load_has_no_failed_requests(tmp_path):
    with start_server([*APP, "--workers", "2"], tmp_path=tmp_path) as srv:
        original = set(ready_workers(srv, 2))
        with Load(srv.url) as load:
            wait_until(lambda: load.ok > 50, what="load running")
            for _ in range(2):
                current = set(children(srv.proc))
                srv.proc.send_signal(signal.SIGHUP)
                wait_until(lambda cur=current: (c := set(children(srv.proc))) and len(c) == 2 and not c & cur,
                           timeout=30, what="all workers replaced")
            count = load.ok
            wait_until(lambda: load.ok > count + 50, what="load continuing")
        assert load.failures == []
        assert load.pids - original, "the new workers served requests"
        assert srv.output().count("SIGHUP received: rolling restart") == 2


@pytest.mark.skipif(not __import__("shutil").which("wrk"), reason="wrk not installed (apt-get install wrk)")
def test_sighup_under_wrk_keep_alive_load_loses_nothing(tmp_path):
    """wrk never retries: a keep-alive connection closed while a request may be on its way is a socket error.
    16 keep-alive connections, one SIGHUP: 0 socket errors and 0 non-2xx responses. Each response takes a few
    milliseconds (like a real view), so some are in flight whenever the old workers stop."""
    with start_server([*APP, "--workers", "2"], tmp_path=tmp_path) as srv:
        current = set(ready_workers(srv, 2))
        wrk = subprocess.Popen(["wrk", "-t1", "-c16", "-d15s", srv.url + "/slow?s=0.005"], stdout=subprocess.PIPE, text=True)
        try:
            srv.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: (c := set(children(srv.proc))) and len(c) == 2 and not c & current, timeout=30,
                       what="all workers replaced")
            replaced_under_load = wrk.poll() is None
            out, _ = wrk.communicate(timeout=60)
        finally:
            if wrk.poll() is None:
                wrk.kill()
        if not replaced_under_load:
            pytest.skip("the rolling restart took longer than the wrk run on this machine: nothing was measured")
        assert " requests in " in out, out
        assert "Socket errors" not in out and "Non-2xx" not in out, out


def test_sigterm_finishes_in_flight_request_and_runs_lifespan_shutdown(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {"WORKERS_MARKER_DIR": str(markers)}
    with start_server([*APP, "--workers", "2"], env=env, tmp_path=tmp_path) as srv:
        pids = ready_workers(srv, 2)
        result: dict = {}

        def slow():
            try:
                result["response"] = get(srv.url + "/slow?t=1.5", timeout=20)
            except Exception as exc:
                result["error"] = exc

        t = threading.Thread(target=slow)
        t.start()
        wait_until(lambda: any(markers.glob("slow-*")), what="the request in a worker")
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(30) == 0
        t.join(10)
        assert "error" not in result, result
        assert result["response"].status_code == 200 and result["response"].text == "slow done"
        assert sorted(p.name for p in markers.glob("shutdown-*")) == sorted(f"shutdown-{p}" for p in pids)


def test_ttin_ttou_scale_workers(tmp_path):
    with start_server([*APP, "--workers", "1"] + ["--respawn-failed-workers"], tmp_path=tmp_path) as srv:
        ready_workers(srv, 1)
        srv.proc.send_signal(signal.SIGTTIN)
        ready_workers(srv, 2)
        srv.proc.send_signal(signal.SIGTTIN)
        ready_workers(srv, 3)
        srv.proc.send_signal(signal.SIGTTOU)
        ready_workers(srv, 2)
        assert get(srv.url).status_code == 200
        assert srv.stop() == 0


@pytest.mark.parametrize(("args", "env", "message", "code"), [
    (APP, {"WORKERS_FAIL_STARTUP": "1"}, "database is unreachable", 3),
    (["--interface", "asgi", "workers_missing_module:app"], {}, "could not import module", 2),
])
def test_worker_startup_failure_exits_with_the_error(args, env, message, code):
    t0 = time.monotonic()
    done = run_to_exit([*args, "--workers", "2", "--respawn-failed-workers", "--port", str(free_port())], env=env)
    assert done.returncode == code, done.stderr
    assert "failed to start: " in done.stderr and message in done.stderr
    assert time.monotonic() - t0 < 25


def test_crash_loop_after_start_gives_up(tmp_path):
    """A respawned worker that cannot start (code broken after a deploy) does not spin forever."""
    app = tmp_path / "flaky_app.py"
    app.write_text("import os\nasync def app(scope, receive, send):\n"
                   "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
                   "    await send({'type': 'http.response.body', 'body': str(os.getpid()).encode()})\n")
    args = ["--interface", "asginl", "--working-dir", str(tmp_path), "flaky_app:app", "--respawn-failed-workers",
            "--respawn-interval", "0.05"]
    with start_server(args, tmp_path=tmp_path) as srv:
        pid = ready_workers(srv, 1)[0]
        app.write_text("raise RuntimeError('broken deploy')\n")
        os.kill(pid, signal.SIGKILL)
        assert srv.proc.wait(40) == 2
        assert "start-up failures in a row, giving up" in srv.output()
        assert "broken deploy" in srv.output()


def test_pid_file_written_and_removed(tmp_path):
    pid_file = tmp_path / "server.pid"
    with start_server([*APP, "--pid-file", str(pid_file)], tmp_path=tmp_path) as srv:
        assert pid_file.read_text().strip() == str(srv.proc.pid)
        assert srv.stop() == 0
    assert not pid_file.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--pid-file", "/nonexistent-dir/x.pid"], "--pid-file '/nonexistent-dir/x.pid': directory"),
    (["--pid-file", "/proc/x.pid"], "--pid-file '/proc/x.pid': "),  # not writable (even for root)
    (["--workers", "-1"], "--workers: -1 is below the minimum 1"),
    (["--workers", "many"], "--workers: invalid value 'many'"),
    (["--reload", "--reload-paths", "/nonexistent-path"], "--reload-paths: '/nonexistent-path' does not exist"),
    (["--reload", "--reload-filter", "nope.Filter"], "--reload-filter 'nope.Filter': cannot import"),
    (["--reload", "--reload-ignore-patterns", "(["], "--reload-ignore-patterns: '([' is not a valid regular"),
])
def test_bad_input_fails_at_start(args, message):
    done = run_to_exit([*APP, *args, "--port", str(free_port())])
    assert done.returncode == 2
    assert message in done.stderr


def test_reload_without_watchfiles_is_a_clear_error(tmp_path):
    shadow = tmp_path / "shadow" / "watchfiles"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no watchfiles here')\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "shadow"), str(ROOT), str(APPS)])}
    full_env = dict(os.environ, **env)
    done = subprocess.run([sys.executable, "-m", "django_granian", *APP, "--reload", "--port", str(free_port())],
                          capture_output=True, text=True, timeout=30, env=full_env, cwd=str(ROOT))
    assert done.returncode == 2
    assert "--reload needs watchfiles (pip install django-granian[reload])" in done.stderr


def test_metrics_port_in_use_is_a_clear_error():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_to_exit([*APP, "--metrics", "--metrics-port", str(port), "--port", str(free_port())])
    assert done.returncode == 2
    assert f"--metrics-port: cannot bind the metrics endpoint to 127.0.0.1:{port}" in done.stderr


# -- binding ----------------------------------------------------------------------------------------------
def test_unix_socket_with_workers(tmp_path):
    path = tmp_path / "srv.sock"
    args = [*APP, "--workers", "2", "--uds", str(path), "--workers-max-requests", "3"]
    with start_server(args, tmp_path=tmp_path, wait=False) as srv:
        wait_until(lambda: path.exists() and len(children(srv.proc)) == 2, what="uds + workers")
        transport = httpx.HTTPTransport(uds=str(path))
        pids: set[int] = set()
        with httpx.Client(transport=transport, timeout=10) as client:
            deadline = time.monotonic() + 30
            while len(pids) < 3 and time.monotonic() < deadline:
                pids.add(int(wait_until(lambda: _try(client), what="uds response")))
        assert len(pids) >= 3  # workers were replaced (max-requests) and the socket file survived it
        assert path.exists()
        assert srv.stop() == 0
    assert not path.exists()


def _try(client: httpx.Client) -> str | None:
    try:
        return client.get("http://uds/").text
    except httpx.HTTPError:
        return None


def test_inherited_fd_with_workers(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    fd = sock.fileno()
    env = dict(os.environ, **env_path())
    log = open(tmp_path / "fd.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "django_granian", *APP, "--workers", "2", "--fd", str(fd)],
                            pass_fds=[fd], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
    sock.close()
    try:
        wait_until(lambda: len(children(proc)) == 2, what="workers")
        assert wait_until(lambda: _get_port(port), what="response on the inherited socket") .isdigit()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()


def _get_port(port: int) -> str | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
    except httpx.HTTPError:
        return None


def test_systemd_socket_activation(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    fd = sock.fileno()

    def as_fd3():
        os.dup2(fd, 3)

    env = dict(os.environ, **env_path(), LISTEN_FDS="1")
    script = f'LISTEN_PID=$$ exec "{sys.executable}" -m django_granian --interface asgi --workers 2 workers_app:app'
    log = open(tmp_path / "sd.log", "wb")
    proc = subprocess.Popen(["/bin/sh", "-c", script], preexec_fn=as_fd3, pass_fds=[fd, 3], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=str(ROOT))
    sock.close()
    try:
        wait_until(lambda: len(children(proc)) == 2, what="workers")
        assert wait_until(lambda: _get_port(port), what="response on the activated socket").isdigit()
        assert "Using 1 socket(s) from systemd socket activation" in (tmp_path / "sd.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log.close()


def test_process_name(tmp_path):
    with start_server([*APP, "--workers", "2", "--process-name", "shop"], tmp_path=tmp_path) as srv:
        pids = ready_workers(srv, 2)
        names = sorted(" ".join(psutil.Process(p).cmdline()) if _has_setproctitle() else psutil.Process(p).name()
                       for p in pids)
        assert names[0].startswith("shop worker-1") and names[1].startswith("shop worker-2")
        assert psutil.Process(srv.proc.pid).name().startswith("shop super")


def _has_setproctitle() -> bool:
    try:
        import setproctitle  # noqa: F401
    except ImportError:
        return False
    return True


def test_supervisor_death_stops_orphaned_workers(tmp_path):
    with start_server([*APP, "--workers", "2"], tmp_path=tmp_path) as srv:
        pids = ready_workers(srv, 2)
        srv.proc.kill()
        srv.proc.wait(10)
        wait_until(lambda: not any(_alive(p) for p in pids), what="orphans exiting")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_workers_kill_timeout(tmp_path):
    """A worker stuck past --workers-kill-timeout is SIGKILLed; the supervisor still exits 0."""
    args = [*APP, "--workers", "2", "--graceful-timeout", "30", "--workers-kill-timeout", "1"]
    markers = tmp_path / "markers"
    markers.mkdir()
    with start_server(args, env={"WORKERS_MARKER_DIR": str(markers)}, tmp_path=tmp_path) as srv:
        ready_workers(srv, 2)
        t = threading.Thread(target=lambda: _quiet_get(srv.url + "/slow?t=20"))
        t.start()
        wait_until(lambda: any(markers.glob("slow-*")), what="the request in a worker")
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0
        assert time.monotonic() - t0 < 8
        assert "did not stop within 1.0s: killing it" in srv.output()
        t.join(30)


def _quiet_get(url: str) -> None:
    try:
        httpx.get(url, timeout=30)
    except httpx.HTTPError:
        pass

