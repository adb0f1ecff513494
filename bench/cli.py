"""``python -m bench``: list scenarios, run one side by side, print a markdown table, save JSON."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from pathlib import Path

from bench import report
from bench.runner import Harness
from bench.spec import RunOptions, get, scenarios


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="Side-by-side benchmarks of django-granian and its peers (server pinned to one CPU, load "
                    "generator to another, servers alternated, medians and ratios). See bench/README.md.")
    ap.add_argument("--list", action="store_true", help="list scenarios with their servers and exit")
    sub = ap.add_subparsers(dest="command")
    sub.add_parser("list", help="list scenarios with their servers")
    sub.add_parser("profile", help="profile one server under load with py-spy (see `profile --help`)",
                   add_help=False)
    sub.add_parser("instructions", help="instructions per request of our server, counted by valgrind (see "
                   "`instructions --help`)", add_help=False)
    run = sub.add_parser("run", help="run a scenario")
    run.add_argument("scenario", help="scenario name (see --list)")
    run.add_argument("--duration", type=float, default=10.0, help="seconds per measured run [10]")
    run.add_argument("--rounds", type=int, default=3, help="rounds (each server once per round) [3]")
    run.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per server and workload, 0=off [2]")
    run.add_argument("--connections", "-c", type=int, default=64, help="concurrent connections [64]")
    run.add_argument("--threads", "-t", type=int, default=1, help="load generator threads [1]")
    run.add_argument("--servers", type=_csv, help="comma-separated subset of the scenario's servers")
    run.add_argument("--workloads", type=_csv, help="comma-separated subset of the scenario's workloads")
    run.add_argument("--server-cpus", default="0", help="taskset CPU list for servers [0]")
    run.add_argument("--client-cpus", default="1", help="taskset CPU list for the load generator [1]")
    run.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    run.add_argument("--output", "-o", type=Path, help="also write the markdown table to this file")
    run.add_argument("--results-dir", type=Path, default=report.RESULTS,
                     help="where the JSON + markdown record goes [bench/results]")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    return ap


def list_scenarios() -> str:
    lines = []
    for name, sc in scenarios().items():
        lines.append(f"{name}: {sc.description}")
        for s in sc.servers:
            missing = s.missing()
            note = f"  (unavailable: missing {', '.join(missing)})" if missing else ""
            group = f" [{s.group}]" if s.group else ""
            lines.append(f"    - {s.name}{group}{note}")
        for w in sc.workloads:
            lines.append(f"    * workload {w.name}: {w.tool.name} {w.path}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["profile"]:
        from bench.profiling import main as profile_main

        return profile_main(args_list[1:])
    if args_list[:1] == ["instructions"]:
        from bench.instructions import main as instructions_main

        return instructions_main(args_list[1:])
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.list or args.command == "list":
        print(list_scenarios())
        return 0
    if args.command != "run":
        ap.print_help()
        return 2
    try:
        scenario = get(args.scenario)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    if args.duration <= 0 or args.rounds < 1 or args.warmup < 0 or args.connections < 1:
        print("--duration and --connections must be > 0, --rounds >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    options = RunOptions(duration=args.duration, rounds=args.rounds, warmup=args.warmup,
                         connections=args.connections, threads=args.threads, server_cpus=args.server_cpus,
                         client_cpus=args.client_cpus, pin=not args.no_pin, servers=args.servers,
                         workloads=args.workloads)
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    load_start = [round(x, 2) for x in os.getloadavg()]
    try:
        harness = Harness(scenario, options, log)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # run()'s finally stops every server's process group

    signal.signal(signal.SIGTERM, interrupted)
    try:
        result = harness.run()
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    meta = {
        "command": ".venv/bin/python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": report.machine(),
        "versions": report.versions(scenario, {w.tool.name for w in scenario.workloads}),
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    text = report.markdown(scenario, result, meta)
    print(text)
    path = report.save(scenario, result, meta, text, args.results_dir)
    log(f"saved {path} and {path.with_suffix('.md')}")
    if args.output:
        args.output.write_text(text)
    ok = any(r.runs for r in result.rows)
    return 0 if ok else 1
