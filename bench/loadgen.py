"""Load generators: command lines and output parsers.

Every parser returns the same dict (a *measurement*)::

    {"requests": int, "duration_s": float, "rps": float, "p50_ms": float|None, "p99_ms": float|None,
     "errors": int, "error_detail": {...}, "bytes": int|None}

``errors`` counts socket errors (connect/read/write/timeout), failed requests and non-2xx/3xx responses;
a measurement with ``errors > 0`` is flagged in the report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from bench.spec import LoadTool, RunOptions

HERE = Path(__file__).resolve().parent
MARK = "BENCH_JSON "


def _json_line(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise ValueError(f"no {MARK.strip()} line in output:\n{stdout[-2000:]}")


def measurement(requests: int, duration_s: float, *, p50_ms: float | None = None, p99_ms: float | None = None,
                errors: dict[str, int] | None = None, nbytes: int | None = None, unit: str = "req/s") -> dict:
    errors = dict(errors or {})
    return {
        "requests": requests,
        "duration_s": duration_s,
        "rps": requests / duration_s if duration_s > 0 else 0.0,
        "unit": unit,
        "p50_ms": p50_ms,
        "p99_ms": p99_ms,
        "errors": sum(errors.values()),
        "error_detail": errors,
        "bytes": nbytes,
    }


class Wrk(LoadTool):
    """wrk (HTTP/1.1 keep-alive). Latency percentiles and error counts come from ``wrk_report.lua``."""

    name = "wrk"
    requires = ("wrk",)

    def __init__(self, connections: int | None = None, threads: int | None = None, timeout: str = "5s",
                 headers: tuple[str, ...] = ()):
        self.connections = connections
        self.threads = threads
        self.timeout = timeout
        self.headers = headers

    def _ct(self, options: RunOptions) -> tuple[int, int]:
        return self.connections or options.connections, self.threads or options.threads

    def command(self, url: str, duration: float, options: RunOptions) -> list[str]:
        c, t = self._ct(options)
        argv = ["wrk", f"-t{t}", f"-c{c}", f"-d{max(1, round(duration))}s", f"--timeout={self.timeout}",
                "-s", str(HERE / "wrk_report.lua")]
        for h in self.headers:
            argv += ["-H", h]
        return [*argv, url]

    def describe(self, options: RunOptions) -> str:
        c, t = self._ct(options)
        extra = "".join(f" -H '{h}'" for h in self.headers)
        return f"wrk -t{t} -c{c} -d<duration>s{extra}"

    def parse(self, stdout: str) -> dict:
        data = _json_line(stdout)
        return measurement(
            data["requests"], data["duration_us"] / 1e6, p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000,
            errors=data["errors"], nbytes=data["bytes"])


_H2_FINISHED = re.compile(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s")
_H2_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                          r"(\d+) errored, (\d+) timeout")
_H2_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_H2_TIME = re.compile(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)")
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


class H2Load(LoadTool):
    """h2load (HTTP/2, prior knowledge by default): ``-c`` clients x ``-m`` streams, for a duration (``-D``)
    or a fixed request count (``requests=`` -> ``-n``). h2load reports no percentiles: p50 is its mean."""

    name = "h2load"
    requires = ("h2load",)

    def __init__(self, clients: int | None = None, streams: int = 10, threads: int | None = None,
                 requests: int | None = None, extra: tuple[str, ...] = ()):
        self.clients = clients
        self.streams = streams
        self.threads = threads
        self.requests = requests
        self.extra = extra

    def command(self, url: str, duration: float, options: RunOptions) -> list[str]:
        c = self.clients or options.connections
        t = self.threads or options.threads
        argv = ["h2load", f"-c{c}", f"-m{self.streams}", f"-t{t}", *self.extra]
        argv += [f"-n{self.requests}"] if self.requests else [f"-D{max(1, round(duration))}"]
        return [*argv, url]

    def describe(self, options: RunOptions) -> str:
        c = self.clients or options.connections
        amount = f"-n{self.requests}" if self.requests else "-D<duration>"
        return f"h2load -c{c} -m{self.streams} -t{self.threads or options.threads} {amount} {' '.join(self.extra)}"

    def parse(self, stdout: str) -> dict:
        fin = _H2_FINISHED.search(stdout)
        req = _H2_REQUESTS.search(stdout)
        if not fin or not req:
            raise ValueError(f"cannot parse h2load output:\n{stdout[-2000:]}")
        seconds = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
        total, _started, _done, succeeded, failed, errored, timeout = (int(g) for g in req.groups())
        errors = {"failed": failed, "errored": errored, "timeout": timeout}
        status = _H2_STATUS.search(stdout)
        if status:
            errors["status"] = int(status.group(3)) + int(status.group(4))
        mean = None
        tm = _H2_TIME.search(stdout)
        if tm:
            mean = float(tm.group(5)) * _UNIT[tm.group(6)]
        return measurement(succeeded, seconds, p50_ms=mean, errors=errors)


class WsEcho(LoadTool):
    """WebSocket echo round trips (messages/s) with the lean raw client ``bench/wsclient.py``:
    ``connections`` sockets, each sending ``size``-byte text messages and waiting for each echo."""

    name = "ws-echo"
    requires = ("py:uvloop",)

    def __init__(self, connections: int | None = None, size: int = 16, inflight: int = 1):
        self.connections = connections
        self.size = size
        self.inflight = inflight

    def command(self, url: str, duration: float, options: RunOptions) -> list[str]:
        import sys

        c = self.connections or options.connections
        return [sys.executable, str(HERE / "wsclient.py"), "--connections", str(c), "--size", str(self.size),
                "--inflight", str(self.inflight), "--duration", str(duration), url.replace("http://", "ws://", 1)]

    def describe(self, options: RunOptions) -> str:
        c = self.connections or options.connections
        return f"bench/wsclient.py --connections {c} --size {self.size} --inflight {self.inflight}"

    def parse(self, stdout: str) -> dict:
        data = _json_line(stdout)
        return measurement(data["messages"], data["duration_s"], p50_ms=data.get("p50_ms"),
                           p99_ms=data.get("p99_ms"), errors=data.get("errors"), unit="msg/s")


class H3Load(LoadTool):
    """HTTP/3 with ``bench/h3load.py`` (aioquic on uvloop): ``connections`` QUIC connections x ``streams``
    requests in flight. A Python client: its own CPU use is in the ``load CPU`` column."""

    name = "h3load"
    requires = ("py:aioquic", "py:uvloop")

    def __init__(self, connections: int = 4, streams: int = 16):
        self.connections = connections
        self.streams = streams

    def command(self, url: str, duration: float, options: RunOptions) -> list[str]:
        import sys

        return [sys.executable, str(HERE / "h3load.py"), "--connections", str(self.connections), "--streams",
                str(self.streams), "--duration", str(duration), url.replace("http://", "https://", 1)]

    def describe(self, options: RunOptions) -> str:
        return f"bench/h3load.py --connections {self.connections} --streams {self.streams}"

    def parse(self, stdout: str) -> dict:
        data = _json_line(stdout)
        return measurement(data["requests"], data["duration_s"], p50_ms=data.get("p50_ms"),
                           p99_ms=data.get("p99_ms"), errors=data.get("errors"), nbytes=data.get("bytes"))


class InProcess(LoadTool):
    """For ``Server(inprocess=True)`` rows: the server's own argv prints ``BENCH_JSON {"requests", "duration_s"}``."""

    name = "in-process"

    def command(self, url: str, duration: float, options: RunOptions) -> list[str]:
        raise RuntimeError("in-process rows run their own argv")

    def parse(self, stdout: str) -> dict:
        data = _json_line(stdout)
        duration = data.get("duration_s") or data["requests"] / data["rps"]
        errors = data.get("errors")
        return measurement(data["requests"], duration, errors=errors if isinstance(errors, dict) else
                           {"errors": int(errors or 0)})
