"""Zero-loss check: wrk keep-alive load across worker replacements (SIGHUP, lifetime, max-requests, max-RSS).

    .venv/bin/python scripts/zero_loss.py sighup --runs 5
    .venv/bin/python scripts/zero_loss.py sighup --django --runs 5          # manage.py granian (fast path)
    .venv/bin/python scripts/zero_loss.py max-requests --workers 1 --runs 5
    .venv/bin/python scripts/zero_loss.py lifetime|max-rss [--workers N] [--runs N]

One run: start the server (``python -m django_granian --interface asgi --workers N workers_app:app``, or
``testproject/manage.py granian --workers N``) on a free 127.0.0.1 port, start ``wrk -t1 -c16 -d60s --latency``
on a URL whose responses take a few milliseconds (so requests are in flight whenever a worker stops), trigger
the scenario, wait until **every worker that was serving when the trigger happened has exited** (replaced,
drained, gone) and then ``--after`` seconds more of load, and stop wrk with SIGINT (it prints its summary).
So the length of a run follows the machine's speed instead of a guessed duration, and a run in which the
replacement did not happen under load cannot pass.

Triggers: ``sighup`` sends SIGHUP to the supervisor; ``lifetime`` runs with ``--workers-lifetime 2``;
``max-requests`` with ``--workers-max-requests 2000 --workers-max-requests-jitter 500`` (both replace workers
again and again while wrk runs); ``max-rss`` with ``--workers-max-rss 200 --rss-sample-interval 0.2`` and
one ``GET /alloc?mb=256`` (the worker that answers it crosses the limit). wrk does not retry: a connection
closed under a request it had sent is a read error, a refused one a connect error. A run passes with 0
socket errors (connect, read, write, timeout) and 0 non-2xx responses.

Prints one line per run and the totals; exit code 1 when a run failed. ``tests/test_zero_loss.py`` runs the
same :func:`run_once` with one run per scenario.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.core_client import wait_until  # noqa: E402  # the tests' polling loop (AssertionError on timeout)

APPS = ROOT / "tests" / "apps"
MANAGE = ROOT / "testproject" / "manage.py"

SCENARIOS = ("sighup", "lifetime", "max-requests", "max-rss")
SCENARIO_ARGS = {
    "sighup": [],
    "lifetime": ["--workers-lifetime", "2"],
    "max-requests": ["--workers-max-requests", "2000", "--workers-max-requests-jitter", "500"],
    "max-rss": ["--workers-max-rss", "200", "--rss-sample-interval", "0.2", "--rss-samples", "1"],
}
ASGI_PATH = "/slow?s=0.005"  # tests/apps/workers_app.py: a 5 ms response
DJANGO_PATH = "/api/health"  # testproject: django-ninja through Django's sync handler (the fast path)


@dataclass
class WrkResult:
    requests: int = 0
    seconds: float = 0.0
    connect: int = 0
    read: int = 0
    write: int = 0
    timeout: int = 0
    non2xx: int = 0
    p99: str = ""
    output: str = ""

    @property
    def socket_errors(self) -> int:
        return self.connect + self.read + self.write + self.timeout

    @property
    def clean(self) -> bool:
        return self.requests > 0 and self.socket_errors == 0 and self.non2xx == 0


@dataclass
class Run:
    scenario: str
    workers: int
    django: bool
    wrk: WrkResult
    replaced: list[int] = field(default_factory=list)  # pids of the workers that were replaced under load
    replacements: int = 0  # "replaces" lines logged while wrk ran
    under_load: bool = False  # every worker serving at the trigger exited while wrk still ran
    log: str = ""
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return self.wrk.clean and self.under_load and self.exit_code == 0

    def line(self) -> str:
        w = self.wrk
        return (f"{self.scenario:<12} workers={self.workers} {'django' if self.django else 'asgi  '} "
                f"requests={w.requests:<7} in {w.seconds:5.2f}s  socket errors: connect {w.connect}, read {w.read}, "
                f"write {w.write}, timeout {w.timeout}  non-2xx {w.non2xx}  p99 {w.p99 or '?'}  "
                f"replacements {self.replacements}  under load {'yes' if self.under_load else 'NO'}  "
                f"exit {self.exit_code}  {'ok' if self.ok else 'FAIL'}")


def parse_wrk(out: str) -> WrkResult:
    """wrk's summary: ``N requests in Ts``, ``Socket errors: connect a, read b, write c, timeout d``, ``Non-2xx or
    3xx responses: n`` (the last two only when not zero), and the 99% line of ``--latency``."""
    r = WrkResult(output=out)
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if m:
        r.requests = int(m.group(1))
        r.seconds = float(m.group(2)) * (0.001 if m.group(3) == "ms" else 1.0)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r.connect, r.read, r.write, r.timeout = map(int, m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r.non2xx = int(m.group(1))
    m = re.search(r"^\s*99%\s+(\S+)", out, re.M)
    if m:
        r.p99 = m.group(1)
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process(pid).children() if p.status() != psutil.STATUS_ZOMBIE}
    except psutil.NoSuchProcess:
        return set()


def server_command(scenario: str, workers: int, port: int, django: bool, extra: list[str]) -> list[str]:
    args = ["--workers", str(workers), *SCENARIO_ARGS[scenario], *extra, "--port", str(port)]
    if django:
        return [sys.executable, str(MANAGE), "granian", *args]
    return [sys.executable, "-m", "django_granian", "--interface", "asgi", "workers_app:app", *args]


def get(url: str, timeout: float = 10.0) -> bytes:
    req = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return bytes(resp.read())


def run_once(scenario: str, workers: int = 2, *, django: bool = False, path: str | None = None,
             after: float = 1.0, connections: int = 16, extra: list[str] | None = None, timeout: float = 40.0,
             env: dict[str, str] | None = None, log_dir: str | None = None, wait_for: str = "all") -> Run:
    """One run (see the module docstring). ``wait_for="any"``: end once one of the serving workers was
    replaced (shorter, for slow-starting apps). Raises AssertionError when the server does not start or the
    replacement does not complete within ``timeout`` seconds."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    if scenario == "max-rss" and django:
        raise ValueError("max-rss needs the /alloc endpoint of tests/apps/workers_app.py (ASGI only)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(APPS), full_env.get("PYTHONPATH", "")])
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.update(env or {})
    fd, log_name = tempfile.mkstemp(prefix=f"zero-loss-{scenario}-", suffix=".log", dir=log_dir)
    log_path = Path(log_name)
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(server_command(scenario, workers, port, django, extra or []), stdout=log,
                                stderr=subprocess.STDOUT, env=full_env, cwd=str(ROOT), start_new_session=True)
    wrk: subprocess.Popen | None = None
    run = Run(scenario, workers, django, WrkResult())
    try:
        output = lambda: log_path.read_text(errors="replace")  # noqa: E731
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{output()}")
        wait_until(lambda: proc.poll() is not None or "Workers are accepting connections" in output(), timeout,
                   what="the server to start")
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{output()}")
        wait_until(lambda: len(children(proc.pid)) == workers and all(
            f"pid {p})" in output() for p in children(proc.pid)), timeout, what=f"{workers} ready workers")
        target = url + (path or (DJANGO_PATH if django else ASGI_PATH))
        get(target)  # warm (Django's first request imports the URLconf)
        wrk = subprocess.Popen(["wrk", "-t1", f"-c{connections}", "-d60s", "--latency", target],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.5)  # wrk has its connections open and is in its request loop
        serving = children(proc.pid)
        if scenario == "sighup":
            proc.send_signal(signal.SIGHUP)
        elif scenario == "max-rss":
            serving = {int(get(url + "/alloc?mb=256"))}  # that worker is now over --workers-max-rss
        # a worker is stopped only once its successor accepts: when none of them is left, all were replaced
        left = (lambda: len(children(proc.pid) & serving) < len(serving)) if wait_for == "any" else (
            lambda: not children(proc.pid) & serving)
        wait_until(lambda: left() or wrk.poll() is not None, timeout, what="the serving workers to be replaced")
        run.under_load = wrk.poll() is None
        run.replaced = sorted(serving - children(proc.pid))
        if run.under_load:
            time.sleep(after)  # load on the new workers (and, for recycling, more replacements)
        run.replacements = output().count(" replaces worker-")
        if wrk.poll() is None:
            wrk.send_signal(signal.SIGINT)  # stop: wrk prints its summary
        out, _ = wrk.communicate(timeout=30)
        run.wrk = parse_wrk(out)
        proc.send_signal(signal.SIGTERM)
        run.exit_code = proc.wait(timeout)
    finally:
        if wrk is not None and wrk.poll() is None:
            wrk.kill()
            wrk.wait()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stray workers
        except (ProcessLookupError, PermissionError):
            pass
        run.log = log_path.read_text(errors="replace")
        if log_dir is None:
            log_path.unlink()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--django", action="store_true", help="serve testproject with manage.py granian")
    parser.add_argument("--path", help=f"URL path (default {ASGI_PATH}, with --django {DJANGO_PATH})")
    parser.add_argument("--after", type=float, default=1.0, help="seconds of load after the replacement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--show-failed-log", action="store_true", help="print the server log of a failed run")
    args, extra = parser.parse_known_args(argv)
    totals = WrkResult()
    failed = 0
    for i in range(args.runs):
        run = run_once(args.scenario, args.workers, django=args.django, path=args.path, after=args.after,
                       connections=args.connections, extra=extra)
        print(f"run {i + 1}: {run.line()}", flush=True)
        if not run.ok:
            failed += 1
            if args.show_failed_log:
                print(run.wrk.output, run.log, sep="\n")
        w = run.wrk
        totals.requests += w.requests
        totals.seconds += w.seconds
        totals.connect += w.connect
        totals.read += w.read
        totals.write += w.write
        totals.timeout += w.timeout
        totals.non2xx += w.non2xx
    print(f"total: {args.runs} runs, {failed} failed; {totals.requests} requests in {totals.seconds:.1f}s; "
          f"socket errors: connect {totals.connect}, read {totals.read}, write {totals.write}, "
          f"timeout {totals.timeout}; non-2xx {totals.non2xx}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
