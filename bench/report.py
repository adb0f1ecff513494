"""Machine/version facts, the markdown report and the JSON record of a run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path

from bench.runner import Result, Row
from bench.spec import ROOT, Scenario

RESULTS = ROOT / "bench" / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cmd_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    if not text:
        return "?"
    first = text[0].strip()
    for prefix in (f"{Path(argv[0]).name} version: ", f"{Path(argv[0]).name} "):
        if first.startswith(prefix):
            first = first[len(prefix):]
    return first


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "django_granian"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return f"{rev}{' + uncommitted changes in django_granian/' if dirty else ''}"


def versions(scenario: Scenario, load_tools: set[str]) -> dict[str, str]:
    found: dict[str, str] = {"python": platform.python_version()}
    wanted = ["django-granian"]
    for s in scenario.servers:
        wanted += [v for v in s.versions if v not in wanted]
    for name in wanted:
        if name.startswith("cmd:"):
            argv = name[4:].split()
            found[argv[0]] = _cmd_version(argv)
            continue
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["django-granian"] += f" (git {git_revision()})"
    if "wrk" in load_tools:
        found["wrk"] = _cmd_version(["wrk", "-v"]).split(" [")[0]
    if "h2load" in load_tools:
        found["h2load"] = _cmd_version(["h2load", "--version"])
    return found


def machine() -> dict[str, object]:
    return {
        "nproc": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _ratio(base: float | None, value: float | None) -> str:
    if not base or not value:
        return "–"
    return f"{base / value:.2f}x"


def baselines(rows: list[Row]) -> dict[tuple[str, str], Row]:
    """(workload, group) -> the first row of that group (the server the others are compared to)."""
    first: dict[tuple[str, str], Row] = {}
    for row in rows:
        first.setdefault((row.workload, row.group), row)
    return first


def markdown(scenario: Scenario, result: Result, meta: dict) -> str:
    opts = result.options
    when = dt.datetime.fromtimestamp(result.started, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    took = int(result.finished - result.started)
    m = meta["machine"]
    pin = (f"server pinned with `taskset -c {opts.server_cpus}`, load generator with `taskset -c {opts.client_cpus}`"
           if result.pinned else f"**not pinned** ({result.pin_note})")
    lines = [
        f"## `{scenario.name}`: {scenario.description}",
        "",
        f"- Date: {when} (run took {took // 60}m{took % 60:02d}s); load average at start "
        f"{', '.join(map(str, meta['loadavg_start']))}, at end {', '.join(map(str, meta['loadavg_end']))}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}; {pin}",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- Method: {opts.rounds} round(s) of {opts.duration:g}s per server, servers alternated within each round "
        f"(A B C … A B C …), {opts.warmup:g}s warm-up each; median of the rounds; ratio = first server of the "
        "group (ours) ÷ this server",
        f"- Command: `{meta.get('command') or f'.venv/bin/python -m bench run {scenario.name}'}`",
        "",
    ]
    groups = {r.group for r in result.rows}
    first = baselines(result.rows)
    by_workload: dict[str, list[Row]] = {}
    for row in result.rows:
        by_workload.setdefault(row.workload, []).append(row)
    for workload, rows in by_workload.items():
        unit = next((r.runs[0].get("unit", "req/s") for r in rows if r.runs), "req/s")
        lines += [f"### {workload}: `{result.load_commands.get(workload, '')}`", ""]
        head = (("| group " if len(groups) > 1 else "") + f"| server | {unit} (median) | rounds | p50 ms | p99 ms "
                "| errors | server CPU | load CPU | per server CPU-s | ours ÷ this | ours ÷ this per CPU-s |")
        align = ["---"] * (len(groups) > 1) + ["---", "---:", "---", "---:", "---:", "---:", "---:", "---:", "---:",
                                               "---:", "---:"]
        lines += [head, "|" + "|".join(align) + "|"]
        for row in rows:
            base = first[(row.workload, row.group)]
            med = row.median_rps
            if row.failure:
                cells = [f"**{row.server}**", "failed", row.failure.replace("|", "/").replace("\n", " ")[:160],
                         "", "", "", "", "", "", "", ""]
            else:
                rounds = " / ".join(f"{r['rps']:,.0f}" for r in row.runs)
                errs = f"**{row.errors}** ⚠" if row.errors else "0"
                if row.probe and not row.probe.startswith("HTTP 2") and not row.probe.startswith("HTTP 3"):
                    errs += f" (probe: {row.probe})"
                cpu = row.median_of("server_cpu")
                load = row.median_of("load_cpu")  # the load generator's own CPU (a core's worth is 100%)
                eff = row.median_of("per_cpu_s")
                cells = [row.server, f"{med:,.0f}" if med else "–", rounds, _fmt(row.median_of("p50_ms")),
                         _fmt(row.median_of("p99_ms")), errs, "–" if cpu is None else f"{cpu:.0%}",
                         "–" if load is None else f"{load:.0%}", f"{eff:,.0f}" if eff else "–",
                         "baseline" if row is base else _ratio(base.median_rps, med),
                         "baseline" if row is base else _ratio(base.median_of("per_cpu_s"), eff)]
            if len(groups) > 1:
                cells.insert(0, row.group)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if result.skipped:
        lines += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in result.skipped.items()), ""]
    lines += ["Commands (`$PORT` is a free port, `python` the venv's interpreter):", ""]
    lines += [f"- {name}: `{cmd}`" for name, cmd in result.commands.items()]
    if scenario.notes:
        lines += ["", scenario.notes.strip()]
    return "\n".join(lines) + "\n"


def record(scenario: Scenario, result: Result, meta: dict) -> dict:
    first = baselines(result.rows)
    rows = []
    for row in result.rows:
        base = first[(row.workload, row.group)]
        med = row.median_rps
        rows.append({
            **dataclasses.asdict(row),
            "median": med,
            "p50_ms": row.median_of("p50_ms"),
            "p99_ms": row.median_of("p99_ms"),
            "errors_total": row.errors,
            "per_cpu_s": row.median_of("per_cpu_s"),
            "baseline": base.server,
            "ratio": (base.median_rps / med) if (base.median_rps and med) else None,
        })
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "started": dt.datetime.fromtimestamp(result.started, dt.timezone.utc).isoformat(),
        "finished": dt.datetime.fromtimestamp(result.finished, dt.timezone.utc).isoformat(),
        "options": dataclasses.asdict(result.options),
        "pinned": result.pinned,
        "commands": result.commands,
        "load_commands": result.load_commands,
        "skipped": result.skipped,
        **meta,
        "rows": rows,
    }


def save(scenario: Scenario, result: Result, meta: dict, text: str, directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.fromtimestamp(result.started, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{scenario.name}-{stamp}.json"
    path.write_text(json.dumps(record(scenario, result, meta), indent=2, default=str) + "\n")
    path.with_suffix(".md").write_text(text)
    return path
