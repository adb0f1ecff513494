"""Profile one server of a scenario under load: ``python -m bench profile hello --server django-granian``.

Starts the server pinned like a benchmark run, puts wrk (pinned to the client CPU) on it, attaches
py-spy to the server's process tree for ``--seconds``, writes a speedscope file and prints the
functions with the most samples (self = the frame was on top of the stack; total = anywhere on it).
Also usable on an existing file: ``python -m bench.profiling summary FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.procs import ServerProcess, can_pin, free_port, pinned, wait_for_port
from bench.runner import _fill, _server_env
from bench.spec import HOST, ROOT, RunOptions, get


def summarize(path: Path, top: int = 25) -> str:
    """Top functions by self and total samples (lines folded into their function), and the hottest lines."""
    data = json.loads(Path(path).read_text())
    frames = data["shared"]["frames"]

    def short(file: str) -> str:
        for marker in ("site-packages/", "/lib/python3.", str(ROOT) + "/"):
            if marker in file:
                return file.split(marker, 1)[1]
        return file

    def func(i: int) -> str:
        f = frames[i]
        return f"{f['name']} ({short(f['file'])})" if f.get("file") else f["name"]

    def line(i: int) -> str:
        f = frames[i]
        return f"{f['name']} ({short(f['file'])}:{f.get('line', '?')})" if f.get("file") else f["name"]

    self_fn: Counter[str] = Counter()
    total_fn: Counter[str] = Counter()
    self_line: Counter[str] = Counter()
    count = 0
    total = 0.0
    for prof in data["profiles"]:
        weights = prof.get("weights") or [1] * len(prof["samples"])
        for stack, w in zip(prof["samples"], weights, strict=True):
            if not stack:
                continue
            count += 1
            total += w
            self_fn[func(stack[-1])] += w
            self_line[line(stack[-1])] += w
            for name in {func(i) for i in stack}:
                total_fn[name] += w
    if not total:
        return f"no samples in {path}"

    def table(counter: Counter[str]) -> list[str]:
        return [f"{100 * w / total:6.1f}   {name}" for name, w in counter.most_common(top)]

    return "\n".join([f"{count} non-idle samples in {path}", "", "self %   function (lines folded)",
                      *table(self_fn), "", "total %  function", *table(total_fn), "", "self %   line",
                      *table(self_line)])


def profile(scenario_name: str, server_name: str, workload: str | None, seconds: float, rate: int,
            native: bool, output: Path, connections: int, top: int) -> int:
    scenario = get(scenario_name)
    servers = {s.name: s for s in scenario.servers}
    if server_name not in servers:
        print(f"unknown server {server_name!r}; known: {list(servers)}", file=sys.stderr)
        return 2
    server = servers[server_name]
    wl = next((w for w in scenario.workloads if workload in (None, w.name)), None)
    if wl is None:
        print(f"unknown workload {workload!r}", file=sys.stderr)
        return 2
    opts = RunOptions(connections=connections)
    ok_pin, _ = can_pin(opts.server_cpus, opts.client_cpus)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        ctx = {"python": sys.executable, "root": str(ROOT), "host": HOST, "tmp": tmp, "duration": str(seconds)}
        if scenario.setup:
            ctx.update(scenario.setup(Path(tmp)))
        port = free_port()
        ctx["port"] = str(port)
        if server.prepare:
            server.prepare(ctx)
        argv = [_fill(a, ctx) for a in server.argv]
        proc = ServerProcess(pinned(argv, opts.server_cpus if ok_pin else None), _server_env(server, ctx),
                             _fill(server.cwd, ctx), Path(tmp) / "server.log")
        try:
            wait_for_port(HOST, port, proc.proc, server.start_timeout)
            load = subprocess.Popen(
                pinned(wl.tool.command(f"http://{HOST}:{port}{wl.path}", seconds + 4, opts),
                       opts.client_cpus if ok_pin else None), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True)
            time.sleep(2)  # warm-up under load before sampling
            spy = ["py-spy", "record", "--pid", str(proc.pid), "--duration", str(int(seconds)), "--rate", str(rate),
                   "--format", "speedscope", "--output", str(output), "--subprocesses"]
            # --nonblocking (don't pause the process per sample) keeps the server fast, but py-spy cannot
            # unwind native frames without pausing.
            spy.append("--native" if native else "--nonblocking")
            spy_bin = Path(sys.executable).with_name("py-spy")
            if spy_bin.exists():
                spy[0] = str(spy_bin)
            done = subprocess.run(spy, capture_output=True, text=True)
            out, _ = load.communicate(timeout=seconds + 60)
            if done.returncode != 0:
                print(f"py-spy failed ({done.returncode}): {done.stderr.strip()}", file=sys.stderr)
                return 1
            with_load = wl.tool.parse(out)
            print(f"load during profile: {with_load['rps']:,.0f} {with_load['unit']} (sampling slows the server)")
        finally:
            proc.stop()
    print(summarize(output, top))
    print(f"\nspeedscope file: {output} (open at https://www.speedscope.app)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench profile", description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario")
    ap.add_argument("--server", default="django-granian")
    ap.add_argument("--workload")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    ap.add_argument("-c", "--connections", type=int, default=64)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(os.environ.get("TMPDIR", "/tmp")) / "bench-profile.speedscope.json")
    args = ap.parse_args(argv)
    return profile(args.scenario, args.server, args.workload, args.seconds, args.rate, args.native, args.output,
                   args.connections, args.top)


if __name__ == "__main__":
    if sys.argv[1:2] == ["summary"]:
        print(summarize(Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 25))
    else:
        raise SystemExit(main())
