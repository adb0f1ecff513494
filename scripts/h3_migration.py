#!/usr/bin/env python
"""Measure what QUIC connection migration does with ``--workers N`` (docs/howto/http3.md).

    .venv/bin/python scripts/h3_migration.py --workers 1 3 --tries 30

For each worker count it starts ``python -m django_granian --http3 --workers N`` on a free port (a
trustme certificate), then runs ngtcp2's client ``tries`` times with a NAT rebinding in the middle
of the connection: ``gtlsclient --change-local-addr 300ms --nat-rebinding --delay-stream 800ms`` (the
handshake from one UDP port, the request from another, as after a NAT timeout or a Wi-Fi/cellular
switch). It counts the requests that got their response over the migrated path. Needs gtlsclient
(Debian: ``apt-get install ngtcp2-client``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.core_client import free_udp_tcp_port  # noqa: E402


def measure(workers: int, tries: int, tmp: Path) -> tuple[int, int]:
    port = free_udp_tcp_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'apps'}"}
    argv = [sys.executable, "-m", "django_granian", "--interface", "asgi", "--port", str(port), "--workers",
            str(workers), "--http3", "--ssl-certificate", str(tmp / "cert.pem"), "--ssl-keyfile", str(tmp / "key.pem"),
            "workers_app:app"]
    log = open(tmp / f"server-{workers}.log", "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    try:
        deadline = time.monotonic() + 30
        while (tmp / f"server-{workers}.log").read_text().count("(HTTP/3, UDP") < 1 or \
                "accepting connections" not in (tmp / f"server-{workers}.log").read_text() and workers > 1:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((tmp / f"server-{workers}.log").read_text())
            time.sleep(0.1)
        ok = 0
        for _ in range(tries):
            out = subprocess.run(["gtlsclient", "--exit-on-all-streams-close", "--change-local-addr=300ms",
                                  "--nat-rebinding", "--delay-stream=800ms", "--timeout=3s", "127.0.0.1", str(port),
                                  f"https://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=20)
            text = out.stdout + out.stderr
            if "Changing local address" in text and "[:status: 200]" in text:
                ok += 1
        return ok, tries
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--tries", type=int, default=30)
    args = parser.parse_args()
    if shutil.which("gtlsclient") is None:
        print("gtlsclient not found (apt-get install ngtcp2-client)", file=sys.stderr)
        return 2
    import trustme

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cert = trustme.CA().issue_cert("localhost", "127.0.0.1")
        cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
        print("| --workers | migrated requests answered | expected if the kernel's hash decides (1/N) |")
        print("|---:|---:|---:|")
        for workers in args.workers:
            ok, tries = measure(workers, args.tries, tmp)
            print(f"| {workers} | {ok}/{tries} ({ok / tries:.0%}) | {1 / workers:.0%} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
