"""HTTP/1.1 behaviours end to end against the real server: keep-alive, pipelining, chunked bodies,
100-continue, HEAD, HTTP/1.0, Connection: close, Date/Server, prefix, header injection, disconnects,
backpressure."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Iterator

import pytest

from .conftest import ServerProcess, start_server
from .core_client import Conn, concurrent_bodies, get, wait_until


@pytest.fixture(scope="module")
def mark_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, mark_dir: Path) -> Iterator[ServerProcess]:
    with start_server(["--interface", "asgi", "core_apps:app", "--http", "1"], tmp_path=mark_dir,
                      env={"CORE_MARK_DIR": str(mark_dir)}) as srv:
        yield srv


def test_keep_alive_and_default_headers(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        for i in range(3):
            r = c.request(get(f"/k{i}"))
            assert r.status == 200 and r.body == f"ok /k{i}".encode()
            assert r.header("connection") is None
            assert r.header("server") == b"django-granian"
            assert r.header("date", ).endswith(b" GMT")  # type: ignore[union-attr]
            assert len(r.all("date")) == 1
        r = c.request(get("/custom-headers"))
        assert r.all("server") == [b"mine"] and r.all("date") == [b"yesterday"]


def test_pipelining_in_one_packet_responses_in_order(server: ServerProcess) -> None:
    reqs = [get("/a"), get("/echo", method="POST", body=b"body-1"), get("/stream"),
            get("/echo", "Transfer-Encoding: chunked", method="POST") + b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            get("/hello", method="HEAD"), get("/z")]
    with Conn(server.port) as c:
        c.send(b"".join(reqs))
        bodies = [c.read_response(head=(i == 4)).body for i in range(len(reqs))]
        assert bodies == [b"ok /a", b"body-1", b"one,two,three", b"abcde", b"", b"ok /z"]
        assert c.expect_nothing()


def test_chunked_request_body_streams_to_the_app(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(get("/echo", "Transfer-Encoding: chunked", method="POST"))
        c.send(b"4;ext=1\r\nabcd\r\n")
        c.send(b"5\r\nefghi\r\n0\r\nX-Trailer: t\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"abcdefghi"
        big = b"x" * 300_000
        r = c.request(get("/echo", "Transfer-Encoding: chunked", method="POST")
                      + b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big))
        assert r.body == big and int(r.header("x-messages") or 0) >= 1


def test_chunked_response_and_trailers(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/stream"))
        assert r.header("transfer-encoding") == b"chunked" and r.header("content-length") is None
        assert r.body == b"one,two,three"
        c.send(get("/trailers"))
        raw = b""
        while not raw.endswith(b"\r\n\r\n") or b"x-checksum" not in raw:
            raw += c.sock.recv(4096)
        assert b"4\r\ndata\r\n0\r\nx-checksum: abc\r\n\r\n" in raw


def test_expect_100_continue_sent_when_the_app_reads(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(get("/echo", "Expect: 100-continue", "Content-Length: 5", method="POST"))
        interim = c.read_response()
        assert interim.status == 100
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello" and r.header("connection") is None
        assert c.request(get("/after")).body == b"ok /after"


def test_expect_100_app_answers_without_reading(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(get("/noread", "Expect: 100-continue", "Content-Length: 100000", method="POST"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"answered without reading"  # no 100 before it
        assert r.header("connection") == b"close"
        assert c.is_closed()


def test_unread_small_body_is_discarded_and_connection_kept(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/noread", method="POST", body=b"0123456789"))
        assert r.status == 200 and r.header("connection") is None
        assert c.request(get("/next")).body == b"ok /next"
        # the body arrives after the response: still drained, not parsed as a request
        c.send(get("/noread", "Content-Length: 12", method="POST"))
        assert c.read_response().status == 200
        c.send(b"GET /x HTTP/")
        assert c.request(get("/after")).body == b"ok /after"


def test_unread_huge_body_closes(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(get("/noread", "Content-Length: 50000000", method="POST") + b"x" * 1000)
        r = c.read_response()
        assert r.status == 200 and r.header("connection") == b"close"
        assert c.is_closed()


def test_head(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/hello", method="HEAD"), head=True)
        assert r.status == 200 and r.header("content-length") == b"5"
        r = c.request(get("/noread", method="HEAD"), head=True)  # app sends a body without content-length
        assert r.header("content-length") == b"24"
        r = c.request(get("/stream", method="HEAD"), head=True)
        assert r.header("content-length") is None
        assert c.request(get("/x")).body == b"ok /x"  # nothing was sent after the HEAD responses
        assert c.expect_nothing()


def test_http10(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/a", host="", version="1.0"))
        assert r.status == 200 and r.header("connection") == b"close"
        assert c.is_closed()
    with Conn(server.port) as c:
        r = c.request(get("/a", "Connection: keep-alive", version="1.0"))
        assert r.header("connection") == b"keep-alive"
        r = c.request(get("/b", "Connection: keep-alive", version="1.0"))
        assert r.body == b"ok /b"
        c.send(get("/stream", "Connection: keep-alive", version="1.0"))
        r = c.read_response()  # no chunked encoding in HTTP/1.0: close-delimited
        assert r.header("transfer-encoding") is None and r.body == b"one,two,three"
        assert r.header("connection") == b"close"


def test_connection_close(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        r = c.request(get("/a", "Connection: close") + get("/never"))
        assert r.header("connection") == b"close" and r.body == b"ok /a"
        assert c.is_closed()
        assert b"never" not in c.buf


def test_response_header_injection_is_refused(server: ServerProcess) -> None:
    for path in ("/bad-header", "/bad-header-name"):
        with Conn(server.port) as c:
            r = c.request(get(path))
            assert r.status == 500
            assert b"injected" not in r.raw_head.lower()
    assert "invalid response headers" in server.output()


def test_client_disconnect_mid_request_reaches_the_app(server: ServerProcess, mark_dir: Path) -> None:
    marker = mark_dir / "disconnected"
    with Conn(server.port) as c:
        c.send(get("/wait-disconnect", "Content-Length: 10", method="POST") + b"abc")
    wait_until(marker.exists)
    marker.unlink()
    with Conn(server.port) as c:  # a complete request whose client goes away
        c.send(get("/wait-disconnect"))
        assert c.expect_nothing(0.2)
    wait_until(marker.exists)


def test_half_closed_client_gets_immediate_answers(server: ServerProcess) -> None:
    """Requests answered without awaiting are written before the client's FIN is even read."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(get("/first") + get("/second"))
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 2 and b"ok /first" in data and b"ok /second" in data


def test_no_keep_alive_flag(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory(["--interface", "asgi", "core_apps:app", "--no-http1-keep-alive"]) as srv:
        with Conn(srv.port) as c:
            r = c.request(get("/a"))
            assert r.header("connection") == b"close" and c.is_closed()


def test_url_path_prefix(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory(["--interface", "asgi", "core_apps:app", "--url-path-prefix", "/api/"]) as srv:
        with Conn(srv.port) as c:
            scope = json.loads(c.request(get("/api/scope?x=1")).body)
            assert scope["root_path"] == "/api" and scope["path"] == "/api/scope"
            assert scope["raw_path"] == "/api/scope"
            assert c.request(get("/api")).status == 200
            for outside in ("/other", "/apix", "/"):
                assert c.request(get(outside)).status == 404
            assert c.request(get("/api/__count")).body == b"2"  # the 404s never reached the app


def test_backpressure_waits_instead_of_failing(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory(["--interface", "asgi", "core_apps:app", "--backpressure", "2"]) as srv:
        results = concurrent_bodies(srv.port, "/sleep?0.3", 6)
        assert results == [b"slept"] * 6
        with Conn(srv.port) as c:
            assert c.request(get("/__max")).body == b"2"


def test_http1_buffer_size(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory(["--interface", "asgi", "core_apps:app", "--http1-buffer-size", "2048"]) as srv:
        with Conn(srv.port) as c:
            assert c.request(get("/", "X-A: " + "a" * 1500)).status == 200
            r = c.request(get("/", "X-A: " + "a" * 1500, "X-B: " + "b" * 1500))
            assert r.status == 431 and c.is_closed()


def test_http2_preface_split_across_reads_is_still_detected(server_factory) -> None:  # type: ignore[no-untyped-def]
    """With --http auto, a prior-knowledge client whose preface arrives in pieces ("PR" first) gets
    HTTP/2, not a 400 for a malformed HTTP/1.1 request line."""
    import h2.config
    import h2.connection
    import h2.events

    with server_factory(["--interface", "asgi", "core_apps:app"]) as srv:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/hello"),
                              (":authority", "localhost")], end_stream=True)
        data = conn.data_to_send()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for piece in (data[:1], data[1:3], data[3:]):
                sock.sendall(piece)
            status = None
            ended = False
            while not ended:
                chunk = sock.recv(65536)
                assert chunk, "connection closed before the HTTP/2 response"
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers)[b":status"]
                    elif isinstance(event, h2.events.StreamEnded):
                        ended = True
                sock.sendall(conn.data_to_send())
        assert status == b"200"
