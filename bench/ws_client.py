"""WebSocket echo comparison: django-granian vs Granian (--interface asgi) vs uvicorn (websockets), same run.

    .venv/bin/python bench/ws_client.py --rounds 3 --duration 5 --connections 32 --size 16

Each round starts every server in turn (A/B/C, A/B/C, ...) pinned to core 0 (``taskset -c 0``) with the
echo app ``tests/apps/ws_echo.py`` (= ``bench/apps/ws_echo.py``) and drives it with the lean load client
``bench/wsclient.py`` pinned to core 1. Reported per server: median echoed messages/s, and median messages
per *server CPU-second* (utime+stime of the server process and its threads over the measured window, from
/proc): on a shared, noisy machine the second number is the robust one, because a server with more runnable
threads (Granian: Rust runtime + Python) also gets a larger share of a contended core. Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")


def servers(port: int, deflate: bool) -> dict[str, list[str]]:
    bindir = Path(PY).parent
    dg = [PY, "-m", "django_granian", "--interface", "asgi", "--port", str(port), "--log-level", "warning"]
    if not deflate:
        dg.append("--no-ws-per-message-deflate")
    return {
        "django-granian": [*dg, "ws_echo:app"],
        "granian": [str(bindir / "granian"), "--interface", "asgi", "--port", str(port), "--log-level", "warning",
                    "ws_echo:app"],
        "uvicorn": [str(bindir / "uvicorn"), "--ws", "websockets", "--loop", "uvloop", "--http", "httptools",
                    "--port", str(port), "--log-level", "warning", "ws_echo:app"],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process and its children (all threads are included in a process's stat)."""
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("server did not start")


def one(name: str, cmd: list[str], port: int, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests" / "apps")]))
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(["taskset", "-c", args.server_cpu, *cmd], env=env, cwd=str(ROOT),
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port, server)
        client = subprocess.Popen(
            ["taskset", "-c", args.client_cpu, PY, str(ROOT / "bench" / "wsclient.py"), "--connections",
             str(args.connections), "--size", str(args.size), "--inflight", str(args.inflight), "--duration",
             str(args.duration), f"ws://127.0.0.1:{port}/"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5 + 0.3 + min(0.5, args.duration / 10))  # connect + client warm-up
        cpu0 = cpu_seconds(server.pid)
        threads = len(os.listdir(f"/proc/{server.pid}/task"))
        t0 = time.monotonic()
        out, _ = client.communicate(timeout=args.duration + 60)
        cpu1 = cpu_seconds(server.pid)
        wall = time.monotonic() - t0
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    result = json.loads(line[len("BENCH_JSON "):])
    rate = result["messages"] / result["duration_s"]
    cpu = max(cpu1 - cpu0, 1e-6)
    # the CPU window is slightly longer than the measured window (close + teardown): scale to it
    per_cpu = rate * min(wall, args.duration) / cpu
    errors = sum(result["errors"].values())
    print(f"  {name:15s} {rate:10.0f} msg/s   {per_cpu:10.0f} msg/CPU-s   threads={threads}  errors={errors}",
          flush=True)
    if errors:
        log.seek(0)
        print("    server output:", log.read()[-2000:].decode(errors="replace"), flush=True)
    log.close()
    return {"rate": rate, "per_cpu": per_cpu, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--inflight", type=int, default=1)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    ap.add_argument("--deflate", action="store_true", help="leave permessage-deflate on for django-granian "
                    "(the load client never offers it, so this only matters for real clients)")
    ap.add_argument("--only", nargs="*", help="server names to run")
    args = ap.parse_args(argv)
    results: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", flush=True)
        for name in servers(0, args.deflate):
            if args.only and name not in args.only:
                continue
            port = free_port()
            results.setdefault(name, []).append(one(name, servers(port, args.deflate)[name], port, args))
    base = results.get("django-granian")
    print("\n| server | median msg/s | median msg per server CPU-s | django-granian ratio (msg/s, per CPU-s) "
          "| errors |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, rows in results.items():
        rate = statistics.median(x["rate"] for x in rows)
        per = statistics.median(x["per_cpu"] for x in rows)
        ratio = ""
        if base and name != "django-granian":
            brate = statistics.median(x["rate"] for x in base)
            bper = statistics.median(x["per_cpu"] for x in base)
            ratio = f"{brate / rate:.2f}x, {bper / per:.2f}x"
        print(f"| {name} | {rate:,.0f} | {per:,.0f} | {ratio} | {sum(x['errors'] for x in rows)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
