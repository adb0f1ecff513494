"""Graceful shutdown on SIGTERM/SIGINT: in-flight requests finish, idle keep-alive connections are
closed, lifespan shutdown runs, exit code 0; a request that outlives --graceful-timeout is cut."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import psutil
import pytest

from .core_client import Conn, get, wait_until


def fetch(port: int, path: str) -> bytes:
    with Conn(port) as c:
        return c.request(get(path)).body


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("interface,app", [("asgi", "core_apps:app"), ("wsgi", "core_apps:wsgi")])
def test_graceful_shutdown(server_factory, tmp_path: Path, sig: int, interface: str,  # type: ignore[no-untyped-def]
                           app: str) -> None:
    with server_factory(["--interface", interface, app], env={"CORE_MARK_DIR": str(tmp_path)}) as srv:
        idle = Conn(srv.port)
        assert idle.request(get("/x")).status == 200
        busy = Conn(srv.port, timeout=20)
        busy.send(get("/sleep?1.5"))
        wait_until(lambda: fetch(srv.port, "/__count") == b"2")  # /x and the sleeping request reached the app
        result: dict = {}

        def stop() -> None:
            result["code"] = srv.stop(sig)

        stopper = threading.Thread(target=stop)
        stopper.start()
        assert idle.is_closed(timeout=5) and idle.buf == b""  # idle keep-alive: a lingering close after the grace
        r = busy.read_response()  # the in-flight request completes
        assert r.status == 200 and r.header("connection") == b"close"
        stopper.join(30)
        assert result["code"] == 0
    if interface == "asgi":
        assert (tmp_path / "shutdown").exists()


def test_keep_alive_response_ending_after_the_signal_keeps_the_connection_for_the_next_request(  # type: ignore[no-untyped-def]
        server_factory) -> None:
    """A response that started before the shutdown (its head said keep-alive) and ends after it: the client may
    send its next request at once, so the connection must not be closed under it (a non-retrying client such
    as wrk counted those as read errors on every rolling restart). The next request is answered with
    `connection: close`."""
    import socket

    with server_factory(["--interface", "asgi", "core_apps:app"]) as srv:
        conn = Conn(srv.port, timeout=20)
        conn.send(b"POST /stream-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        wait_until(lambda: conn._more() and b"started," in conn.buf)
        assert b"connection: close" not in conn.buf.lower()  # a keep-alive response
        srv.proc.send_signal(signal.SIGTERM)

        def refused() -> bool:  # the listener closes once the shutdown has begun
            try:
                socket.create_connection(("127.0.0.1", srv.port), timeout=1).close()
            except OSError:
                return True
            return False

        wait_until(refused)
        conn.send(b"0\r\n\r\n")  # the request body ends: the app ends its response
        r = conn.read_response()
        assert r.status == 200 and r.body == b"started,hello"
        conn.send(get("/hello"))  # right behind it, on the same connection
        r = conn.read_response()
        assert r.status == 200 and r.body and r.header("connection") == b"close"
        assert conn.is_closed()
        assert srv.stop() == 0


def test_graceful_timeout_cuts_long_requests(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory(["--interface", "asgi", "core_apps:app", "--graceful-timeout", "0.5"]) as srv:
        busy = Conn(srv.port, timeout=20)
        busy.send(get("/sleep?30"))
        wait_until(lambda: fetch(srv.port, "/__count") == b"1")
        assert srv.stop(signal.SIGTERM) == 0
        assert busy.read_to_close(timeout=5)


def test_leftover_tasks_are_cancelled_not_destroyed(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A task the app left running gets CancelledError at shutdown (its finally runs), like asyncio.run."""
    with server_factory(["--interface", "asgi", "core_apps:app"], env={"CORE_MARK_DIR": str(tmp_path)}) as srv:
        assert fetch(srv.port, "/background") == b"started"
        assert srv.stop(signal.SIGTERM) == 0
        out = srv.output()
    assert (tmp_path / "background-finally").exists(), out
    assert "Task was destroyed but it is pending" not in out


def test_requests_waiting_for_a_backpressure_slot_are_served_during_shutdown(  # type: ignore[no-untyped-def]
        server_factory, tmp_path: Path) -> None:
    args = ["--interface", "asgi", "core_apps:app", "--backpressure", "1"]
    with server_factory(args, env={"CORE_MARK_DIR": str(tmp_path)}) as srv:
        busy = Conn(srv.port, timeout=20)
        busy.send(get("/sleep?1"))
        wait_until(lambda: (tmp_path / "sleeping").exists())  # the only slot is taken
        parked = Conn(srv.port, timeout=20)
        parked.send(get("/hello"))  # no slot: it waits for the sleeping request's
        server = psutil.Process(srv.proc.pid)
        wait_until(lambda: sum(c.status == "ESTABLISHED" for c in server.net_connections("tcp")) >= 2)  # accepted
        result: dict = {}
        stopper = threading.Thread(target=lambda: result.setdefault("code", srv.stop(signal.SIGTERM)))
        stopper.start()
        first = busy.read_response()
        second = parked.read_response()
        stopper.join(30)
    assert first.status == 200 and first.body == b"slept"
    assert second.status == 200 and second.body == b"hello" and second.header("connection") == b"close"
    assert result["code"] == 0
