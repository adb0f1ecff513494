"""Run a scenario: start every server (pinned), warm up, alternate rounds, collect measurements."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench.loadgen import InProcess
from bench.procs import ServerProcess, can_pin, free_port, pinned, wait_for_port
from bench.spec import HOST, ROOT, LoadTool, RunOptions, Scenario, Server, Workload, available

Log = Callable[[str], None]


@dataclass
class Row:
    """All rounds of one (workload, server) pair."""

    workload: str
    server: str
    group: str
    command: str = ""
    runs: list[dict] = field(default_factory=list)
    failure: str = ""
    probe: str = ""

    @property
    def median_rps(self) -> float | None:
        ok = [r["rps"] for r in self.runs]
        return statistics.median(ok) if ok else None

    def median_of(self, key: str) -> float | None:
        vals = [r[key] for r in self.runs if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    @property
    def errors(self) -> int:
        return sum(r["errors"] for r in self.runs)


@dataclass
class Result:
    scenario: str
    options: RunOptions
    rows: list[Row]
    commands: dict[str, str]
    load_commands: dict[str, str]
    skipped: dict[str, str]
    pinned: bool
    pin_note: str
    started: float
    finished: float = 0.0


def _fill(template: str, ctx: dict[str, str]) -> str:
    return template.format_map(ctx)


def _server_env(server: Server, ctx: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONDEVMODE", None)
    env.pop("PYTHONASYNCIODEBUG", None)
    for k, v in server.env.items():
        env[k] = _fill(v, ctx)
    return env


def _probe(url: str) -> str:
    """One plain GET before the warm-up, so a 404 or a crash is reported as such (not as 'slow')."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
            return f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"error: {exc}"


class Harness:
    def __init__(self, scenario: Scenario, options: RunOptions, log: Log = lambda s: print(s, file=sys.stderr)):
        self.scenario = scenario
        self.options = options
        self.log = log
        self.servers = self.selected_servers()  # raises KeyError for unknown names: before anything starts
        self.workloads = self.selected_workloads()

    def selected_servers(self) -> list[Server]:
        servers = list(self.scenario.servers)
        if self.options.servers:
            unknown = set(self.options.servers) - {s.name for s in servers}
            if unknown:
                raise KeyError(f"unknown server(s) {sorted(unknown)} in scenario {self.scenario.name!r}; "
                               f"known: {[s.name for s in servers]}")
            servers = [s for s in servers if s.name in self.options.servers]
        return servers

    def selected_workloads(self) -> list[Workload]:
        workloads = list(self.scenario.workloads)
        if self.options.workloads:
            workloads = [w for w in workloads if w.name in self.options.workloads]
            if not workloads:
                raise KeyError(f"no workload matches {self.options.workloads}; "
                               f"known: {[w.name for w in self.scenario.workloads]}")
        return workloads

    def run(self) -> Result:
        opts = self.options
        sc = self.scenario
        want_server = sc.server_cpus if sc.server_cpus is not None else opts.server_cpus
        want_client = sc.client_cpus if sc.client_cpus is not None else opts.client_cpus
        if sc.server_cpus is not None or sc.client_cpus is not None:
            opts.server_cpus, opts.client_cpus = want_server, want_client
        ok_pin, pin_note = can_pin(want_server, want_client) if opts.pin else (False, "disabled")
        if not ok_pin:
            self.log(f"! CPU pinning off: {pin_note}")
        server_cpus = want_server if ok_pin else None
        client_cpus = want_client if ok_pin else None
        servers, workloads = self.servers, self.workloads
        result = Result(self.scenario.name, opts, [], {}, {}, {}, ok_pin, pin_note, time.time())
        for w in workloads:
            result.load_commands[w.name] = f"{w.tool.describe(opts)} http://{HOST}:$PORT{w.path}"
        skipped = result.skipped
        for w in workloads:
            missing = [r for r in w.tool.requires if not available(r)]
            if missing:
                skipped[f"workload {w.name}"] = f"missing {', '.join(missing)}"
        workloads = [w for w in workloads if f"workload {w.name}" not in skipped]
        runnable = []
        for s in servers:
            missing = s.missing()
            if missing:
                skipped[s.name] = f"missing {', '.join(missing)}"
                self.log(f"- skip {s.name}: missing {', '.join(missing)}")
            else:
                runnable.append(s)
        rows = {(w.name, s.name): Row(w.name, s.name, s.group) for w in workloads for s in runnable
                if w.applies_to(s)}
        result.rows = list(rows.values())
        with tempfile.TemporaryDirectory(prefix=f"bench-{self.scenario.name}-") as tmp:
            ctx = {"python": sys.executable, "root": str(ROOT), "host": HOST, "tmp": tmp,
                   "duration": str(opts.duration)}
            if self.scenario.setup:
                ctx.update(self.scenario.setup(Path(tmp)))
            procs: dict[str, tuple[ServerProcess, int]] = {}
            try:
                for s in runnable:
                    if s.inprocess:
                        shown = {**ctx, "port": "-", "path": "<path>", "duration": "<duration>"}
                        result.commands[s.name] = " ".join(_fill(a, shown) for a in s.argv).replace(
                            ctx["python"], "python")
                        continue
                    started = self._start(s, ctx, server_cpus, result)
                    if isinstance(started, str):
                        for row in rows.values():
                            if row.server == s.name:
                                row.failure = started
                    else:
                        procs[s.name] = started
                live = [s for s in runnable if s.inprocess or s.name in procs]
                for w in workloads:
                    for s in live:
                        found = rows.get((w.name, s.name))
                        if found is None:
                            continue
                        row = found
                        if not s.inprocess:
                            row.probe = _probe(f"http://{HOST}:{procs[s.name][1]}{w.path}") \
                                if w.tool.name in ("wrk",) else ""
                        row.command = result.load_commands[w.name]
                        if opts.warmup > 0:
                            self.log(f"  warm-up {w.name} / {s.name} ({opts.warmup:g}s)")
                            self._measure(s, w, procs, ctx, opts.warmup, server_cpus, client_cpus, row, keep=False)
                for rnd in range(1, opts.rounds + 1):
                    for w in workloads:
                        for s in live:
                            pair = rows.get((w.name, s.name))
                            if pair is None or pair.failure:
                                continue
                            m = self._measure(s, w, procs, ctx, opts.duration, server_cpus, client_cpus, pair,
                                              keep=True)
                            if m is not None:
                                flag = f"  ERRORS {m['error_detail']}" if m["errors"] else ""
                                cpu = m.get("server_cpu")
                                flag = (f"  server CPU {cpu:.0%}" if cpu is not None else "") + flag
                                self.log(f"  round {rnd}/{opts.rounds} {w.name:>12} {s.name:<28} "
                                         f"{m['rps']:>10.0f} {m.get('unit', 'req/s')}{flag}")
            finally:
                for proc, _port in procs.values():
                    proc.stop()
        result.finished = time.time()
        return result

    def _start(self, s: Server, ctx: dict[str, str], cpus: str | None,
               result: Result) -> tuple[ServerProcess, int] | str:
        """Start and wait for the port; returns (process, port) or the reason it failed."""
        port = free_port()
        sctx = {**ctx, "port": str(port)}
        if s.prepare:
            s.prepare(sctx)
        argv = [_fill(a, sctx) for a in s.argv]
        result.commands[s.name] = " ".join(argv).replace(ctx["python"], "python").replace(str(port), "$PORT")
        log_path = Path(ctx["tmp"]) / f"server-{s.name}.log"
        self.log(f"- start {s.name}: {' '.join(argv)}")
        proc = ServerProcess(pinned(argv, cpus), _server_env(s, sctx), _fill(s.cwd, sctx), log_path)
        try:
            wait_for_port(HOST, port, proc.proc, s.start_timeout)
        except (RuntimeError, TimeoutError) as exc:
            out = proc.output(1500)
            proc.stop()
            reason = f"{exc}; output: {out.strip()[-600:]}"
            self.log(f"! {s.name} failed to start: {reason}")
            return f"failed to start: {reason}"
        return proc, port

    def _measure(self, s: Server, w: Workload, procs: dict[str, tuple[ServerProcess, int]], ctx: dict[str, str],
                 duration: float, server_cpus: str | None, client_cpus: str | None, row: Row,
                 keep: bool) -> dict | None:
        if s.inprocess:
            argv = pinned([_fill(a, {**ctx, "port": "-", "duration": f"{duration:g}", "path": w.path})
                           for a in s.argv], server_cpus)
            tool: LoadTool = InProcess()
            env = _server_env(s, ctx)
            cwd = _fill(s.cwd, ctx)
            proc = None
        else:
            proc, port = procs[s.name]
            if proc.proc.poll() is not None:
                row.failure = f"server exited with {proc.proc.returncode}: {proc.output(600).strip()}"
                self.log(f"! {s.name} died: {row.failure}")
                return None
            argv = pinned(w.tool.command(f"http://{HOST}:{port}{w.path}", duration, self.options), client_cpus)
            tool = w.tool
            env, cwd = dict(os.environ), str(ROOT)
        cpu0 = proc.cpu_seconds() if proc else 0.0
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            out = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd,
                                 timeout=duration * 3 + 60)
        except subprocess.TimeoutExpired:
            row.failure = f"{tool.name} timed out"
            return None
        wall = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = proc.cpu_seconds() if proc else 0.0
        try:
            m = tool.parse(out.stdout)
        except (ValueError, KeyError) as exc:
            msg = f"{tool.name} exit {out.returncode}: {exc}; stderr: {out.stderr.strip()[-500:]}"
            if keep:
                row.failure = msg
            self.log(f"! {w.name} / {s.name}: {msg}")
            return None
        m["server_cpu"] = (cpu1 - cpu0) / wall if proc else None
        # Requests per CPU-second the server actually got: robust to a noisy machine stealing the server's core.
        m["per_cpu_s"] = m["requests"] / (cpu1 - cpu0) if proc and cpu1 > cpu0 else None
        m["load_cpu"] = ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) / wall
        if keep:
            row.runs.append(m)
        return m
