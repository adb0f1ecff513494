"""WSGI (PEP 3333) on the real server: environ, streaming wsgi.input, file_wrapper, streamed iterables,
close() always called, exc_info, thread pool sizing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from .conftest import APPS, ServerProcess, start_server
from .core_client import Conn, concurrent_bodies, get, wait_until


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wsgi")


@pytest.fixture(scope="module")
def server(marks: Path) -> Iterator[ServerProcess]:
    with start_server(["--interface", "wsgi", "core_apps:wsgi", "--url-path-prefix", "/app", "--http", "1",
                       "--blocking-threads", "3"], tmp_path=marks, env={"CORE_MARK_DIR": str(marks)}) as srv:
        yield srv


def test_environ(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        r = c.request(b"POST /app/environ/caf%C3%A9%2Fx?a=1&b=%20 HTTP/1.1\r\nHost: example.com:8080\r\n"
                      b"Content-Type: text/plain\r\nContent-Length: 3\r\nX-Forwarded-For: 1.2.3.4\r\n"
                      b"X_Forwarded_For: 6.6.6.6\r\nAccept: a\r\nAccept: b\r\nCookie: x=1\r\nCookie: y=2\r\n\r\nabc")
    env = json.loads(r.body)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/environ/caf\xc3\xa9/x"  # percent-decoded bytes as latin-1 (PEP 3333)
    assert env["QUERY_STRING"] == "a=1&b=%20"
    assert env["RAW_URI"] == "/app/environ/caf%C3%A9%2Fx?a=1&b=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "example.com" and env["SERVER_PORT"] == str(server.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"].isdigit()
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"  # the underscore variant is dropped, not merged
    assert env["HTTP_ACCEPT"] == "a,b" and env["HTTP_COOKIE"] == "x=1; y=2"
    assert env["wsgi.url_scheme"] == "http" and env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True and env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False and env["has_file_wrapper"] is True
    assert env["wsgi.input"] == "BytesIO"  # read whole on the event loop before the app ran (small: in memory)
    assert env["wsgi.input_terminated"] is True


def test_outside_prefix_is_404(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        assert c.request(get("/other")).status == 404
        assert c.request(get("/app")).body == b"ok "


@pytest.fixture(scope="module")
def streaming(marks: Path) -> Iterator[ServerProcess]:
    """The same app with --no-request-body-buffering: wsgi.input streams from the loop (WSGIInput)."""
    with start_server(["--interface", "wsgi", "core_apps:wsgi", "--url-path-prefix", "/app", "--http", "1",
                       "--no-request-body-buffering"], tmp_path=marks, env={"CORE_MARK_DIR": str(marks)}) as srv:
        yield srv


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("chunked", [False, True])
def test_streaming_input(server: ServerProcess, streaming: ServerProcess, chunked: bool, buffered: bool) -> None:
    if not buffered:
        server = streaming
    body = b"".join(b"line %d\n" % i for i in range(20000))  # ~200 KB
    def send(path: str) -> bytes:
        with Conn(server.port) as c:
            if chunked:
                data = get(path, "Transfer-Encoding: chunked", method="POST")
                data += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[i:i + 7000]
                                                                        for i in range(0, len(body), 7000)))
                data += b"0\r\n\r\n"
            else:
                data = get(path, method="POST", body=body)
            r = c.request(data)
            assert r.status == 200
            return r.body
    assert send("/app/echo") == body
    assert send("/app/read-n?4096") == body
    assert send("/app/readline") == body.replace(b"\n", b"\n|")[:-1]
    assert send("/app/iter") == body


def test_readline_with_size(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        assert c.request(get("/app/readline-limited", method="POST", body=b"abcdef\nxyz")).body == b"abc|def\nxyz"


def test_file_wrapper(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/app/file"))
        assert r.body == (APPS / "core_apps.py").read_bytes()


def test_file_wrapper_outlives_close_of_a_deleted_temporary_file(server: ServerProcess, marks: Path) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/app/tempfile"))
    assert r.status == 200 and r.header("content-length") == str(1024 * 1024 - 16).encode()
    assert r.body == (b"0123456789abcdef" * 65536)[16:]
    name = (marks / "tempfile").read_text()
    wait_until(lambda: not os.path.exists(name))  # the app's close() ran (and deleted it)


def test_file_wrapper_with_a_bodiless_status_sends_no_body(server: ServerProcess, marks: Path) -> None:
    big = marks / "for-304.bin"
    big.write_bytes(b"z" * (1024 * 1024))  # large enough for the sendfile path
    with Conn(server.port) as c:
        r = c.request(get(f"/app/notmodified-file?{big}"))
        assert (r.status, len(r.body)) == (304, 0)
        assert c.request(get("/app/x")).status == 200  # the connection is still in step


def test_file_wrapper_hands_the_file_to_the_event_loop(server: ServerProcess, marks: Path) -> None:
    """Large file responses are sent by the event loop: three clients that do not read their 16 MiB
    downloads do not keep the server's three request threads, so a fourth request is still served."""
    big = marks / "big.bin"
    big.write_bytes(os.urandom(1024 * 1024) * 16)
    before = count(server.port)
    stalled = [Conn(server.port, timeout=20) for _ in range(3)]
    for conn in stalled:
        conn.send(get(f"/app/bigfile?{big}"))
    wait_until(lambda: count(server.port) >= before + 3)  # (itself a request that needs a free thread)
    with Conn(server.port, timeout=10) as c:
        assert c.request(get("/app/other")).status == 200
    with stalled[0] as c:  # and a download read to the end is complete
        r = c.read_response()
        assert r.status == 200 and r.body == big.read_bytes()
    for conn in stalled[1:]:
        conn.close()


def count(port: int) -> int:
    with Conn(port, timeout=10) as c:
        return int(c.request(get("/app/__count")).body)


def test_streamed_iterable_and_close(server: ServerProcess, marks: Path) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/app/stream?s1"))
        assert r.body == b"a" * 10 + b"b" * 10 + b"c" * 10
        assert r.header("transfer-encoding") == b"chunked"
    wait_until((marks / "closed-s1").exists)
    with Conn(server.port) as c:
        r = c.request(get("/app/write"))
        assert r.body == b"written,returned"


def test_close_called_on_error_and_disconnect(server: ServerProcess, marks: Path) -> None:
    with Conn(server.port) as c:
        c.send(get("/app/error-after"))
        assert c.read_to_close()
        assert c.buf.startswith(b"HTTP/1.1 200") and not c.buf.endswith(b"0\r\n\r\n")
    wait_until((marks / "closed-error-after").exists)
    assert "after the response started" in server.output()
    with Conn(server.port) as c:
        c.send(get("/app/big-stream"))
        c.sock.recv(1000)  # read a little of a 4 MB response, then go away
    wait_until((marks / "closed-big").exists)


def test_error_before_and_exc_info(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/app/error-before"))
        assert r.status == 500 and c.is_closed()
    assert "wsgi boom before" in server.output()
    with Conn(server.port) as c:
        r = c.request(get("/app/exc-info"))
        assert r.status == 503 and r.body == b"unavailable" and r.header("x-partial") is None


def test_header_injection_refused(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/app/bad-header"))
        assert r.status == 500 and b"injected" not in r.raw_head.lower()


def test_blocking_threads_sizing(server: ServerProcess) -> None:
    names = concurrent_bodies(server.port, "/app/sleep?0.3", 6, timeout=30)
    assert len(names) == 6 and len(set(names)) <= 3
    with Conn(server.port) as c:
        assert int(c.request(get("/app/__max")).body) == 3
