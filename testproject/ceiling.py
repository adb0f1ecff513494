"""Django's in-process ceiling: call the project's WSGI handler in a loop, no server, no sockets.

``python testproject/ceiling.py [--duration 10] [--path /api/health]`` prints requests/s and a
``BENCH_JSON {...}`` line (the bench harness's in-process format). This is the speed a server
running Django's synchronous handler cannot exceed on one core.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--path", default="/api/health")
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    from testproject.wsgi import application

    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": args.path, "QUERY_STRING": "", "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "*/*", "HTTP_USER_AGENT": "ceiling", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    status: list[str] = []

    def start_response(s: str, headers: list, exc_info: object = None) -> None:
        status.append(s)

    def call() -> None:
        result = application(dict(environ), start_response)
        b"".join(result)
        result.close()

    deadline = time.perf_counter() + args.warmup
    while time.perf_counter() < deadline:
        call()
    assert status[-1].startswith("200"), status[-1]
    count = 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + args.duration
    while True:
        for _ in range(100):
            call()
        count += 100
        now = time.perf_counter()
        if now >= deadline:
            break
    cpu_us = (time.process_time() - cpu0) * 1e6 / count
    rps = count / (now - start)
    print(f"{rps:.0f} requests/s ({count} calls of {args.path} in {now - start:.1f}s, {cpu_us:.1f} us CPU per call)")
    print("BENCH_JSON " + json.dumps({"rps": rps, "requests": count, "errors": 0, "cpu_us_per_request": cpu_us}))


if __name__ == "__main__":
    main()
