"""``python -m bench instructions PATH``: CPU instructions per request, counted by valgrind.

``perf stat -e instructions`` does not work on these VMs and req/s moves by ±10% with the machine's
load, so the steady number for "did this change make the hot path slower?" is the count of machine
instructions the server executes per request. It is counted like this:

1. Our server (the scenario's first server: exactly what ``python -m bench run PATH`` starts, one
   worker, no supervisor) is started under ``valgrind --tool=callgrind --instr-atstart=no``: start-up
   runs uninstrumented (fast), nothing is counted yet. ``PYTHONHASHSEED=0`` makes dict/set layouts
   the same in every run.
2. A warm-up batch of requests (caches, memos, code paths exercised once) is sent, then counting is
   switched on (``callgrind_control -i on``).
3. The server idles for ``--idle`` seconds while counted: what it executes per second with nothing
   to do (the once-a-second Date timer, the loop's wake-ups) is its *idle rate*.
4. Two batches of ``--small`` and ``--large`` requests follow, each on a fresh connection, sent one at
   a time by ``h2load -c 1 -m 1`` (a client that never retries and whose own work is not counted:
   it is another process). Before a batch the counters are zeroed, after it they are dumped, and
   the idle rate times the batch's wall time is subtracted: on a loaded machine a batch takes
   longer and would otherwise count more timer ticks per request.
5. Instructions per request = (count(large) - count(small)) / (large - small): what a connection and
   the counter toggling cost is the same in both batches and drops out of the difference.

Every batch must answer every request with a 2xx, or the measurement fails. ``--tree DIR`` runs the
server from another checkout (for a before/after comparison: ``git worktree add /tmp/base <rev>``);
its ``django_granian`` is put first on ``PYTHONPATH`` and the module path actually imported is
printed with the result. ``--repeat N`` runs the whole measurement N times (a new server each time)
to show how steady it is; the median is reported.

Callgrind runs the server ~50x slower; a hello-world batch of 2000 requests takes a few seconds,
Django's ``/api/health`` about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.procs import ServerProcess, free_port, wait_for_port
from bench.spec import HOST, ROOT, get


@dataclass(frozen=True)
class Target:
    """One request path: which scenario's server (ours) and what URL, over which protocol."""

    scenario: str
    server: str
    path: str
    h2: bool = False
    h3: bool = False  # HTTP/3: bench/h3load.py --requests N instead of h2load
    small: int = 500
    large: int = 2500
    warmup: int = 200
    idle: float = 5.0
    headers: tuple[str, ...] = ()  # request headers, e.g. ("accept-encoding: gzip",)


TARGETS: dict[str, Target] = {
    "hello": Target("hello", "django-granian", "/"),
    "hello-wsgi": Target("hello", "django-granian wsgi", "/"),
    "django": Target("django", "manage.py granian", "/api/health", small=200, large=700, warmup=100),
    "h2": Target("h2", "django-granian --http 2", "/", h2=True),
    "static": Target("static", "django-granian static", "/static/app.css"),
    "compress-html-gzip": Target("compression", "manage.py granian --compress", "/bench/page/", small=100, large=400,
                                 warmup=50, headers=("accept-encoding: gzip",)),
    "compress-html-zstd": Target("compression", "manage.py granian --compress", "/bench/page/", small=100, large=400,
                                 warmup=50, headers=("accept-encoding: gzip, deflate, br, zstd",)),
    "compress-html-identity": Target("compression", "manage.py granian --compress", "/bench/page/", small=100,
                                     large=400, warmup=50, headers=("accept-encoding: identity",)),
    "h3": Target("h3", "django-granian --http3", "/", h3=True),
    "h3-hypercorn": Target("h3", "hypercorn (h3)", "/", h3=True),
    "h3-static": Target("h3", "django-granian --http3 static", "/static/app.css", h3=True),
    "h3-static-whitenoise": Target("h3", "whitenoise on hypercorn (h3)", "/static/app.css", h3=True),
}

_SUMMARY = re.compile(rb"^summary: (\d+)", re.M)
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed")
_STATUS = re.compile(r"status codes: (\d+) 2xx")


class MeasureError(RuntimeError):
    pass


def _run(argv: list[str], timeout: float) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise MeasureError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}")
    return proc.stdout


def batch(url: str, n: int, h2: bool, timeout: float, headers: tuple[str, ...] = (), h3: bool = False) -> None:
    """``n`` requests, one at a time on one connection; every one must be answered 2xx."""
    if h3:
        out = _run([sys.executable, str(ROOT / "bench" / "h3load.py"), "--connections", "1", "--streams", "1",
                    "--requests", str(n), url.replace("http://", "https://", 1)], timeout)
        data = json.loads(out.rsplit("BENCH_JSON ", 1)[-1])
        if data["requests"] != n or any(data["errors"].values()):
            raise MeasureError(f"not all {n} HTTP/3 requests succeeded with 2xx: {data}")
        return
    argv = ["h2load", "-n", str(n), "-c", "1", "-m", "1", "-t", "1"]
    for header in headers:
        argv += ["-H", header]
    if not h2:
        argv.append("--h1")
    out = _run([*argv, url], timeout)
    m = _REQUESTS.search(out)
    s = _STATUS.search(out)
    if m is None or s is None or int(m.group(4)) != n or int(s.group(1)) != n:
        raise MeasureError(f"not all {n} requests succeeded with 2xx:\n{out[-800:]}")


def control(pid: int, *args: str) -> None:
    _run(["callgrind_control", *args, str(pid)], timeout=120)


def read_dump(directory: Path, pid: int, before: set[Path]) -> int:
    """The instruction count of the newest callgrind dump of ``pid``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = sorted(set(directory.glob(f"callgrind.out.{pid}.*")) - before, key=lambda p: p.stat().st_mtime)
        for path in reversed(new):
            match = _SUMMARY.search(path.read_bytes())
            if match:
                return int(match.group(1))
        time.sleep(0.1)
    raise MeasureError("callgrind wrote no dump")


def measure_once(target: Target, tree: Path, small: int, large: int, warmup: int, idle: float, log: bool) -> dict:
    scenario = get(target.scenario)
    server = next(s for s in scenario.servers if s.name == target.server)
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        ctx = {"python": sys.executable, "root": str(tree), "host": HOST, "port": str(port), "tmp": str(tmp),
               "duration": "1", "path": target.path}
        if scenario.setup is not None:
            ctx.update(scenario.setup(tmp))
        env = dict(os.environ)
        for key in ("PYTHONDEVMODE", "PYTHONASYNCIODEBUG", "PYTHONPATH"):
            env.pop(key, None)
        for key, value in server.env.items():
            env[key] = value.format_map(ctx)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)
        env["PYTHONHASHSEED"] = "0"
        env["PYTHONUNBUFFERED"] = "1"
        cwd = server.cwd.format_map(ctx)
        imported = subprocess.run([sys.executable, "-c", "import django_granian; print(django_granian.__file__)"],
                                  env=env, cwd=cwd, capture_output=True, text=True).stdout.strip()
        argv = [a.format_map(ctx) for a in server.argv]
        vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={tmp}/callgrind.out.%p"]
        proc = ServerProcess([*vg, *argv], env, cwd, tmp / "server.log")
        try:
            try:
                wait_for_port(HOST, port, proc.proc, timeout=600)
            except (RuntimeError, TimeoutError) as exc:
                raise MeasureError(f"server did not start: {exc}\n{proc.output()}") from None
            url = f"http://{HOST}:{port}{target.path}"
            timeout = 1200.0
            batch(url, warmup, target.h2, timeout, target.headers, target.h3)
            pid = proc.pid
            control(pid, "-i", "on")

            def counted(run: Callable[[], None]) -> tuple[int, float]:
                before = set(tmp.glob(f"callgrind.out.{pid}.*"))
                control(pid, "-z")
                start = time.monotonic()
                run()
                elapsed = time.monotonic() - start
                control(pid, "-d")
                return read_dump(tmp, pid, before), elapsed

            idle_count, idle_time = counted(lambda: time.sleep(idle))
            idle_rate = idle_count / idle_time if idle > 0 else 0.0
            counts = {}
            for n in (small, large):
                raw, elapsed = counted(lambda n=n: batch(url, n, target.h2, timeout, target.headers, target.h3))
                counts[n] = raw - idle_rate * elapsed
                if log:
                    print(f"  {n} requests: {raw:,} instructions in {elapsed:.1f}s, {counts[n]:,.0f} without "
                          f"the idle rate ({idle_rate:,.0f}/s)", file=sys.stderr, flush=True)
        finally:
            proc.stop(timeout=60)
    per_request = (counts[large] - counts[small]) / (large - small)
    return {"counts": counts, "per_request": per_request, "idle_rate": idle_rate, "imported": imported,
            "argv": argv}


def _git(tree: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True)
    return out.stdout.strip()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench instructions",
                                 description="Instructions per request of our server, counted by valgrind "
                                             "(callgrind). See bench/instructions.py.")
    ap.add_argument("paths", nargs="+", choices=sorted(TARGETS), help="request paths to measure")
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose django_granian is served [this one]")
    ap.add_argument("--small", type=int, help="requests in the small batch [per path]")
    ap.add_argument("--large", type=int, help="requests in the large batch [per path]")
    ap.add_argument("--warmup", type=int, help="uncounted requests first [per path]")
    ap.add_argument("--idle", type=float, help="seconds of counted idling for the idle rate, 0: none [5]")
    ap.add_argument("--repeat", type=int, default=1, help="independent measurements (new server each) [1]")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for tool in ("valgrind", "callgrind_control", "h2load"):
        if shutil.which(tool) is None:
            print(f"{tool} not found (apt-get install valgrind nghttp2-client)", file=sys.stderr)
            return 2
    tree = args.tree.resolve()
    results = []
    for name in args.paths:
        target = TARGETS[name]
        small = args.small or target.small
        large = args.large or target.large
        warmup = args.warmup if args.warmup is not None else target.warmup
        idle = args.idle if args.idle is not None else target.idle
        if not 0 < small < large:
            print("--small must be > 0 and below --large", file=sys.stderr)
            return 2
        runs = []
        for i in range(args.repeat):
            print(f"{name}: run {i + 1}/{args.repeat} ({tree})", file=sys.stderr, flush=True)
            try:
                runs.append(measure_once(target, tree, small, large, warmup, idle, log=True))
            except MeasureError as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                return 1
        per = [r["per_request"] for r in runs]
        results.append({"path": name, "url": target.path, "small": small, "large": large, "warmup": warmup,
                        "idle_rate": [round(r["idle_rate"]) for r in runs],
                        "per_request": [round(p) for p in per], "median": round(statistics.median(per)),
                        "imported": runs[0]["imported"], "server": " ".join(runs[0]["argv"])})
    meta = {"tree": str(tree), "commit": _git(tree, "rev-parse", "HEAD"),
            "dirty": bool(_git(tree, "status", "--porcelain", "--untracked-files=no")),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "python": sys.version.split()[0],
            "valgrind": _run(["valgrind", "--version"], 30).strip()}
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return 0
    print(f"tree {meta['tree']} at {meta['commit'][:12]}{' (with uncommitted changes)' if meta['dirty'] else ''}, "
          f"{meta['date']}, Python {meta['python']}, {meta['valgrind']}\n")
    print("| path | URL | batches (warm-up) | instructions / request (median) | runs | idle / s |")
    print("|---|---|---|---:|---|---|")
    for r in results:
        runs_text = ", ".join(f"{p:,}" for p in r["per_request"])
        idle_text = ", ".join(f"{p:,}" for p in r["idle_rate"])
        print(f"| {r['path']} | `{r['url']}` | {r['small']} / {r['large']} ({r['warmup']}) | {r['median']:,} "
              f"| {runs_text} | {idle_text} |")
    print()
    for r in results:
        print(f"- {r['path']}: `{r['server']}` (imports {r['imported']})")
    return 0
