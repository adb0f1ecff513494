"""Access log: default format, every atom of --access-log-fmt, control characters escaped."""

from __future__ import annotations

import re

from .core_client import Conn, get, wait_until

APP = ["--interface", "asgi", "core_apps:app"]


def test_default_format(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory([*APP, "--access-log"]) as srv:
        with Conn(srv.port) as c:
            c.request(get("/hello?x=1"))
        line = wait_until(lambda: [ln for ln in srv.output().splitlines() if "/hello" in ln])[0]
        assert re.fullmatch(r'\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] 127\.0\.0\.1 - "GET /hello HTTP/1\.1" '
                            r'200 5 B \d+\.\d{3} ms', line), line  # units stated: body bytes, milliseconds


def test_all_atoms_and_escaping(server_factory) -> None:  # type: ignore[no-untyped-def]
    fmt = ("A|%(addr)s|%(method)s|%(scheme)s|%(protocol)s|%(path)s|%(query_string)s|%(status)d|%(size)d|"
           "%(header{user-agent})s|%(header{x-missing})s|%(dt_ms).1f|%(time)s")
    with server_factory([*APP, "--access-log", "--access-log-fmt", fmt]) as srv:
        with Conn(srv.port) as c:
            c.request(get("/hello?q=a%20b", "User-Agent: evil\x85\"agent\"\\ \xe9"))
            c.request(get("/echo", method="POST", body=b"12345"))
            c.request(get("/stream"))
        def complete_lines() -> list[str] | None:
            found = [ln for ln in srv.output().split("\n")[:-1] if ln.startswith("A|")]  # whole lines only
            return found if len(found) >= 3 else None

        lines = wait_until(complete_lines)
        first = lines[0].split("|")
        assert first[1:10] == ["127.0.0.1", "GET", "http", "HTTP/1.1", "/hello", "q=a%20b", "200", "5",
                               'evil\\x85\\"agent\\"\\\\ \xe9']
        assert first[10] == "-" and float(first[11]) >= 0
        assert lines[1].split("|")[2] == "POST" and lines[1].split("|")[8] == "5"
        assert lines[2].split("|")[8] == "13"  # streamed body: bytes actually sent
        assert all("\x85" not in ln for ln in lines)
        assert len(srv.output().splitlines()) == len(srv.output().split("\n")) - 1  # no injected line breaks


def test_malformed_requests_are_logged(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A request rejected before it parsed (here a bare LF) is logged like nginx logs one: "-" fields."""
    with server_factory([*APP, "--access-log"]) as srv:
        with Conn(srv.port) as c:
            c.send(b"GET /bad HTTP/1.1\nHost: x\r\n\r\n")
            assert c.read_response().status == 400
        line = wait_until(lambda: [ln for ln in srv.output().splitlines() if '"- - -"' in ln])[0]
        assert re.fullmatch(r'\[.+\] 127\.0\.0\.1 - "- - -" 400 \d+ B \d+\.\d{3} ms', line), line


def test_requests_the_server_answers_for_the_app_are_logged(server_factory) -> None:  # type: ignore[no-untyped-def]
    """A chunked body over --limit-request-body is found after the request reached the app: the server
    answers 413 for it, and that exchange is logged once, with the request's own method and path."""
    with server_factory([*APP, "--access-log", "--limit-request-body", "10"]) as srv:
        with Conn(srv.port) as c:
            c.send(get("/echo", "Transfer-Encoding: chunked", method="POST") + b"6\r\nxxxxxx\r\n6\r\nxxxxxx\r\n0\r\n\r\n")
            assert c.read_response().status == 413
        with Conn(srv.port) as c:
            c.request(get("/hello"))  # a later request: its line proves the 413's line is already out
        lines = wait_until(lambda: (found := [ln for ln in srv.output().splitlines() if '"' in ln]) and
                     any("/hello" in ln for ln in found) and found)
        assert [ln for ln in lines if '"POST /echo HTTP/1.1" 413' in ln] and len(
            [ln for ln in lines if "/echo" in ln]) == 1, lines
