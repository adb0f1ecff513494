"""No request is lost when a worker is replaced or the server stops (issue #13).

- Recycling (``--workers-lifetime``, ``--workers-max-requests``, ``--workers-max-rss``) and SIGHUP under wrk's
  keep-alive load (``wrk -t1 -c16``, wrk never retries): 0 socket errors, 0 non-2xx, with 2 workers and with 1
  (the replacement accepts before the old worker stops, so one worker is enough), and ``manage.py granian``
  (the Django fast path) with max-requests. The runs are ``scripts/zero_loss.py``'s: each ends once every
  worker that was serving at the trigger has exited, plus a second of load, so they last what the machine
  needs (3-10 s here) and cannot pass without a replacement under load.
- SIGTERM: the listener closes, so wrk would only measure connect errors. Raw sockets instead: keep-alive
  connections each with a request in flight (held by the app until the test releases it), a POST whose body
  is still arriving, an idle keep-alive connection per worker and an HTTP/2 stream. After SIGTERM the idle
  connections get a clean close (EOF, no reset), HTTP/2 gets GOAWAY, a new connection is refused, then every
  held request gets its whole 200 response with ``connection: close`` and the server exits 0.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import signal
import socket
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, start_server
from tests.core_client import Conn, get, wait_until

_spec = importlib.util.spec_from_file_location("zero_loss", ROOT / "scripts" / "zero_loss.py")
assert _spec is not None and _spec.loader is not None
zero_loss = importlib.util.module_from_spec(_spec)
sys.modules["zero_loss"] = zero_loss  # dataclasses look their module up
_spec.loader.exec_module(zero_loss)

pytestmark = pytest.mark.timeout(90)
needs_wrk = pytest.mark.skipif(not shutil.which("wrk"), reason="wrk not installed (apt-get install wrk)")


def check(run) -> None:  # type: ignore[no-untyped-def]
    tail = "\n".join(run.log.splitlines()[-40:])
    detail = f"{run.line()}\n--- wrk ---\n{run.wrk.output}\n--- server log (tail) ---\n{tail}"
    assert run.under_load, "the serving workers were not all replaced while wrk ran\n" + detail
    assert run.replacements >= len(run.replaced), detail
    assert run.wrk.requests > 1000, detail
    assert run.wrk.socket_errors == 0 and run.wrk.non2xx == 0, detail
    assert run.exit_code == 0, detail


def test_parse_wrk() -> None:
    out = """Running 1m test @ http://127.0.0.1:1/
  1 threads and 16 connections
  Latency Distribution
     50%    5.49ms
     99%   14.92ms
  5828 requests in 2.51s, 0.86MB read
  Socket errors: connect 0, read 6, write 1, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   2321.05
"""
    r = zero_loss.parse_wrk(out)
    assert (r.requests, r.seconds, r.connect, r.read, r.write, r.timeout, r.non2xx, r.p99) == (
        5828, 2.51, 0, 6, 1, 2, 3, "14.92ms")
    assert r.socket_errors == 9 and not r.clean
    assert zero_loss.parse_wrk("  10 requests in 900.00ms, 1KB read\n").clean


@needs_wrk
@pytest.mark.parametrize(("scenario", "workers"), [
    ("sighup", 2), ("lifetime", 2), ("lifetime", 1), ("max-requests", 2), ("max-requests", 1),
    ("max-rss", 2), ("max-rss", 1),
])
def test_replacement_under_wrk_keep_alive_load_loses_nothing(scenario: str, workers: int, tmp_path: Path) -> None:
    check(zero_loss.run_once(scenario, workers, log_dir=str(tmp_path)))


@needs_wrk
def test_django_fast_path_max_requests_under_wrk_loses_nothing(tmp_path: Path) -> None:
    env = {"TESTPROJECT_DB": str(tmp_path / "db.sqlite3")}
    # a Django worker takes a few seconds to start on 2 busy cores: one replacement (of the two) is enough here;
    # `scripts/zero_loss.py max-requests --django` waits for both
    run = zero_loss.run_once("max-requests", 2, django=True, extra=["--workers-max-requests", "800"], env=env,
                             log_dir=str(tmp_path), wait_for="any")
    assert "Serving Django testproject (fast path: HTTP via WSGI" in run.log, run.log[:3000]
    check(run)


# -- SIGTERM ------------------------------------------------------------------------------------------
def worker_pids(srv, workers: int) -> set[int]:  # type: ignore[no-untyped-def]
    if workers == 1:
        return {srv.proc.pid}
    wait_until(srv.logged("Workers are accepting connections"), what=srv.output)

    def ready() -> set[int]:
        pids = {p.pid for p in psutil.Process(srv.proc.pid).children()}
        return pids if len(pids) == workers and all(f"pid {p})" in srv.output() for p in pids) else set()

    return wait_until(ready, 20, what="ready workers")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_every_in_flight_request_and_closes_keep_alive_connections(workers: int,
                                                                                      tmp_path: Path) -> None:
    from tests.test_http2 import H2Client

    markers = tmp_path / "markers"
    markers.mkdir()
    args = ["--interface", "asgi", "workers_app:app", "--workers", str(workers)]
    with start_server(args, env={"WORKERS_MARKER_DIR": str(markers)}, tmp_path=tmp_path) as srv:
        pids = worker_pids(srv, workers)
        # keep-alive connections, each known to be served by one worker (its pid is what "/" answers)
        by_pid: dict[int, list[Conn]] = {}
        opened: list[Conn] = []
        for _ in range(60):
            conn = Conn(srv.port, timeout=20)
            opened.append(conn)
            by_pid.setdefault(int(conn.request(get("/")).body), []).append(conn)
            if len(opened) >= 8 and set(by_pid) == pids:
                break
        assert set(by_pid) == pids, f"connections reached only {set(by_pid)} of {pids}"
        idle = [conns[0] for conns in by_pid.values()]  # one idle keep-alive connection per worker
        busy = [c for c in opened if c not in idle]
        for i, conn in enumerate(busy[1:]):
            conn.send(get(f"/wait?{i}"))
        post = busy[0]
        body = bytes(range(256)) * 400  # 100 KiB, half of it sent before the signal
        post.send(get("/echo?post", f"Content-Length: {len(body)}", method="POST") + body[:51200])
        h2 = H2Client(srv.port)
        sid = h2.request("/wait?h2")
        wait_until(lambda: len(list(markers.glob("wait-*"))) == len(busy) and (markers / "echo-post").exists(),
                   what="every request in the app")

        srv.proc.send_signal(signal.SIGTERM)
        for conn in idle:  # after the grace period idle connections get a clean (lingering) close
            assert conn.is_closed(timeout=10) and conn.buf == b""
        h2.pump(lambda: h2.goaway() is not None, timeout=10)
        goaway = h2.goaway()
        assert goaway.error_code == 0 and goaway.last_stream_id >= sid
        assert srv.proc.poll() is None  # still finishing the held requests
        # the listener is closed (the supervisor's copy too): a new client is refused, not queued in a backlog that
        # nobody accepts from any more (it would hang until the last worker exits, then be reset)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()

        post.send(body[51200:])  # the rest of the body arrives after the shutdown began
        (markers / "release").write_text("go")
        r = post.read_response()
        assert r.status == 200 and r.header("connection") == b"close"
        assert r.body == f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        for i, conn in enumerate(busy[1:]):
            r = conn.read_response()
            assert r.status == 200 and r.body == f"released {i}".encode() and r.header("connection") == b"close"
        headers, h2_body = h2.response(sid)
        assert headers[b":status"] == b"200" and h2_body == b"released h2"
        for conn in busy:
            assert conn.read_to_close(timeout=10) and conn.buf == b""
        assert srv.proc.wait(30) == 0
        for conn in opened:
            conn.close()
        h2.close()
    out = srv.output()
    assert "Closing" not in out and "did not stop" not in out, out
