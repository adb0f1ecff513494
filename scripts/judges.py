"""Run the third-party conformance judges against the real server and summarise what they say.

    python scripts/judges.py                       # every judge that is installed
    python scripts/judges.py h2spec-h2c h1spec     # some of them
    python scripts/judges.py --json autobahn       # one JSON object per judge (what tests/test_judges.py reads)

Judges (none is a dependency of the project; each is found on PATH or in the variable named):

==============  ===============================================================  ==========
name            what runs                                                        found by
==============  ===============================================================  ==========
h2spec-h2c      ``h2spec -S`` (strict) against the default ``--http auto`` port  ``H2SPEC``
h2spec-h2       the same against an HTTP/2-only (``--http 2``) cleartext port    ``H2SPEC``
h2spec-tls      ``h2spec -S -t -k`` against a TLS port (ALPN h2)                 ``H2SPEC``
h1spec          ``h1spec --strict`` (dropseed/h1spec)                            ``H1SPEC``
autobahn        Autobahn|Testsuite ``wstest -m fuzzingclient``, cases 1-10       ``WSTEST``
                (``--autobahn-cases all``: also 12 and 13, permessage-deflate)
==============  ===============================================================  ==========

Every judge talks to ``tests/apps/judge_app.py`` (reads the request body, answers 200; echoes WebSocket
messages) served by ``python -m django_granian`` on a free 127.0.0.1 port. The exit status is 0 when every
judge that ran reported no failure (Autobahn: no FAILED and, for cases 1-10, no NON-STRICT; h1spec: none but
the checks in ``H1SPEC_REFUSED_ON_PURPOSE``, which the result lists as ``deliberate``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
APP = "judge_app:app"
JUDGES = ("h2spec-h2c", "h2spec-h2", "h2spec-tls", "h1spec", "autobahn")
TOOLS = {"h2spec-h2c": "H2SPEC", "h2spec-h2": "H2SPEC", "h2spec-tls": "H2SPEC", "h1spec": "H1SPEC",
         "autobahn": "WSTEST"}
# h1spec strict checks that want what the server refuses on purpose (docs/http1.md, "Conformance: h1spec"):
# equal repeated Content-Length values are a request-smuggling shape here (tests/test_smuggling.py cl-repeated)
H1SPEC_REFUSED_ON_PURPOSE = frozenset({"Content-Length list with same value accepted",
                                       "Duplicate Content-Length with same value accepted"})
AUTOBAHN_CASES = {"1-10": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"],
                  "all": ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.*", "13.*"]}


def tool(judge: str) -> str | None:
    """The judge's executable: the variable (H2SPEC, H1SPEC, WSTEST), else the program on PATH."""
    var = TOOLS[judge]
    return os.environ.get(var) or shutil.which(var.lower())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(*args: str, log: Path) -> Iterator[int]:
    """``python -m django_granian --interface asgi ARGS judge_app:app`` on a free port, stopped afterwards."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "apps"), str(ROOT)]))
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "django_granian", "--interface", "asgi", "--port", str(port),
                                 "--log-level", "warning", *args, APP], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}: {log.read_text()}")
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not listen within 30s")
                time.sleep(0.05)
            yield port
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _certificate(workdir: Path) -> Path:
    import trustme

    pem = workdir / "server.pem"
    trustme.CA().issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(pem))
    return pem


def run_judge(judge: str, exe: str, workdir: Path, autobahn_cases: str = "1-10") -> dict[str, Any]:
    """Run one judge; returns its totals, the command that ran and ``ok``."""
    server_args: list[str] = []
    if judge == "h2spec-h2":
        server_args = ["--http", "2"]
    elif judge == "h2spec-tls":
        pem = _certificate(workdir)
        server_args = ["--ssl-certificate", str(pem), "--ssl-keyfile", str(pem)]
    with serving(*server_args, log=workdir / f"{judge}.server.log") as port:
        if judge.startswith("h2spec"):
            cmd = [exe, "-h", "127.0.0.1", "-p", str(port), "-S", *(["-t", "-k"] if judge == "h2spec-tls" else [])]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=900).stdout
            version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
            found = re.search(r"(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed", out)
            if found is None:
                raise RuntimeError(f"no h2spec summary in its output:\n{out[-3000:]}")
            total, passed, skipped, failed = map(int, found.groups())
            result = {"total": total, "passed": passed, "skipped": skipped, "failed": failed,
                      "ok": failed == 0, "version": version}
        elif judge == "h1spec":
            cmd = [exe, "--strict", f"127.0.0.1:{port}"]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
            found = re.search(r"(\d+)/(\d+) passed", out)
            if found is None:
                raise RuntimeError(f"no h1spec summary in its output:\n{out[-3000:]}")
            passed, total = map(int, found.groups())
            failing = re.findall(r"\u2717 \d+\. (.*)", re.sub(r"\x1b\[[0-9;]*m", "", out))
            deliberate = [name for name in failing if name in H1SPEC_REFUSED_ON_PURPOSE]
            result = {"total": total, "passed": passed, "failed": total - passed, "failing": failing,
                      "deliberate": deliberate, "ok": passed + len(deliberate) == total}
        else:
            reports = workdir / "autobahn"
            spec = workdir / "fuzzingclient.json"
            spec.write_text(json.dumps({"outdir": str(reports), "cases": AUTOBAHN_CASES[autobahn_cases],
                                        "servers": [{"agent": "django-granian", "url": f"ws://127.0.0.1:{port}"}],
                                        "exclude-cases": [], "exclude-agent-cases": {}}))
            cmd = [exe, "-m", "fuzzingclient", "-s", str(spec)]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=7200, cwd=workdir).stdout
            found = re.search(r"Autobahn Testsuite Version ([^ ]+)", out)
            cases = json.loads((reports / "index.json").read_text())["django-granian"]
            behavior = Counter(case["behavior"] for case in cases.values())
            closing = Counter(case["behaviorClose"] for case in cases.values())
            not_ok = {cid: case["behavior"] for cid, case in cases.items()
                      if case["behavior"] in ("FAILED", "NON-STRICT") or case["behaviorClose"] == "FAILED"}
            strict = [cid for cid, how in not_ok.items() if how == "NON-STRICT" and int(cid.split(".")[0]) < 12]
            result = {"total": len(cases), "behavior": dict(behavior), "close": dict(closing), "not_ok": not_ok,
                      "ok": behavior["FAILED"] == 0 and closing["FAILED"] == 0 and not strict,
                      "version": found.group(1) if found else "?"}
    result.update(judge=judge, command=" ".join(cmd), tool=exe)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("judges", nargs="*", choices=[[], *JUDGES], help="judges to run (default: every one installed)")
    parser.add_argument("--autobahn-cases", choices=sorted(AUTOBAHN_CASES), default="1-10")
    parser.add_argument("--json", action="store_true", help="print one JSON object per judge")
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory(prefix="judges-") as tmp:
        for judge in args.judges or JUDGES:
            exe = tool(judge)
            if exe is None:
                print(json.dumps({"judge": judge, "skipped": f"not installed (set {TOOLS[judge]})"}) if args.json
                      else f"{judge}: not installed (set {TOOLS[judge]})")
                continue
            workdir = Path(tmp) / judge
            workdir.mkdir()
            result = run_judge(judge, exe, workdir, args.autobahn_cases)
            ok = ok and result["ok"]
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                totals = {k: v for k, v in result.items() if k not in ("judge", "command", "tool", "ok")}
                print(f"{judge}: {'OK' if result['ok'] else 'FAILED'} {totals}\n    {result['command']}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
