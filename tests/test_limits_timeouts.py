"""Request limits (414/431/413) and timeouts (slowloris 408, keep-alive idle close) on the real server."""

from __future__ import annotations

import time

from .core_client import Conn, get

APP = ["--interface", "asgi", "core_apps:app"]


def count(port: int) -> int:
    with Conn(port) as c:
        return int(c.request(get("/__count")).body)


def test_limits(server_factory) -> None:  # type: ignore[no-untyped-def]
    args = [*APP, "--limit-request-line", "100", "--limit-request-fields", "5", "--limit-request-field-size", "100",
            "--limit-request-body", "10"]
    with server_factory(args) as srv:
        cases = [
            (get("/" + "a" * 120), 414),
            (get("/" + "a" * 60), 200),
            (get("/", *[f"X-{i}: v" for i in range(5)]), 431),  # Host + 5 = 6 fields
            (get("/", *[f"X-{i}: v" for i in range(4)]), 200),
            (get("/", "X-Big: " + "v" * 100), 431),
            (get("/", "X-Big: " + "v" * 80), 200),
            (get("/echo", method="POST", body=b"x" * 11), 413),
            (get("/echo", method="POST", body=b"x" * 10), 200),
            (get("/echo", "Transfer-Encoding: chunked", method="POST") + b"6\r\nxxxxxx\r\n6\r\nxxxxxx\r\n0\r\n\r\n", 413),
            (get("/echo", "Transfer-Encoding: chunked", method="POST") + b"5\r\nxxxxx\r\n5\r\nxxxxx\r\n0\r\n\r\n", 200),
        ]
        for data, status in cases:
            before = count(srv.port)
            with Conn(srv.port) as c:
                r = c.request(data)
                assert r.status == status, (data[:40], r.status)
                if status != 200:
                    assert r.header("connection") == b"close" and c.is_closed()
            reached = count(srv.port) - before
            # only a chunked body over the limit is discovered after the request was dispatched
            assert reached == (1 if status == 200 or b"chunked" in data else 0)


def test_header_read_timeout_slowloris(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory([*APP, "--http1-header-read-timeout", "1000"]) as srv:
        with Conn(srv.port) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
            start = time.monotonic()
            for _ in range(3):  # trickling bytes does not extend the deadline
                time.sleep(0.3)
                c.send(b"X-A: b\r\n")
            r = c.read_response()
            assert r.status == 408 and r.header("connection") == b"close"
            assert c.is_closed()
            assert time.monotonic() - start < 4
        with Conn(srv.port) as c:  # a connection that never sends anything is closed silently
            assert c.is_closed(timeout=5) and c.buf == b""
        with Conn(srv.port) as c:  # a slow app is not a slow client
            assert c.request(get("/sleep?1.6")).body == b"slept"
        assert count(srv.port) == 1


def test_keep_alive_timeout(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory([*APP, "--keep-alive-timeout", "1"]) as srv:
        with Conn(srv.port) as c:
            assert c.request(get("/a")).status == 200
            start = time.monotonic()
            assert c.is_closed(timeout=5)
            assert 0.9 < time.monotonic() - start < 4
            assert c.buf == b""  # closed silently, no 408 for an idle keep-alive connection


def test_request_body_read_timeout(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A client that stops sending a body the app is reading gets 408 after --request-body-timeout, and the
    app sees the disconnect (ASGI: http.disconnect, so the echo app never answers); a client that keeps
    sending, however slowly, and an app that does not read are never cut off."""
    # the server's clock ticks once a second, so a timeout fires between (timeout - 1) and (timeout + 1) s
    with server_factory([*APP, "--request-body-timeout", "2"]) as srv:
        with Conn(srv.port) as c:
            c.send(get("/echo", "Content-Length: 10", method="POST") + b"abc")
            start = time.monotonic()
            r = c.read_response()
            assert r.status == 408 and r.header("connection") == b"close" and c.is_closed()
            assert 0.9 < time.monotonic() - start < 5
        with Conn(srv.port) as c:  # trickling keeps the request alive: each read restarts the timer
            c.send(get("/echo", "Content-Length: 4", method="POST"))
            for byte in (b"w", b"x", b"y", b"z"):  # 2 s in all, 0.5 s apart
                time.sleep(0.5)
                c.send(byte)
            r = c.read_response()
            assert r.status == 200 and r.body == b"wxyz"
        with Conn(srv.port) as c:  # a slow app whose request body already arrived is not cut off
            assert c.request(get("/sleep?3.2", method="POST", body=b"unread")).body == b"slept"
