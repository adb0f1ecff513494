"""ASGI 3: scope, receive() streaming, app failures and invalid messages, on the real server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from .conftest import ServerProcess, start_server
from .core_client import Conn, get


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("asgi")
    with start_server(["--interface", "asgi", "core_apps:app", "--http", "1"], tmp_path=tmp,
                      env={"CORE_MARK_DIR": str(tmp)}) as srv:
        yield srv


def scope_of(port: int, data: bytes) -> dict:
    with Conn(port) as c:
        r = c.request(data)
        assert r.status == 200, r
        return json.loads(r.body)


def test_scope(server: ServerProcess) -> None:
    s = scope_of(server.port, b"GET /scope/caf%C3%A9/a%2Fb?q=%20x&y HTTP/1.1\r\nHost: example.com:8080\r\n"
                 b"X-Custom: One\r\nx-custom: two\r\nCookie: a=1\r\n\r\n")
    assert s["type"] == "http"
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert s["http_version"] == "1.1" and s["method"] == "GET" and s["scheme"] == "http"
    assert s["path"] == "/scope/café/a/b"
    assert s["raw_path"] == "/scope/caf%C3%A9/a%2Fb"
    assert s["query_string"] == "q=%20x&y"
    assert s["root_path"] == ""
    assert s["headers"] == [["host", "example.com:8080"], ["x-custom", "One"], ["x-custom", "two"],
                            ["cookie", "a=1"]]
    assert s["client"][0] == "127.0.0.1" and isinstance(s["client"][1], int)
    assert s["server"] == ["127.0.0.1", server.port]
    assert "http.response.trailers" in s["extensions"]
    s10 = scope_of(server.port, b"POST /scope HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    assert s10["http_version"] == "1.0" and s10["method"] == "POST"


def test_lifespan_state_is_copied_per_request(server: ServerProcess) -> None:
    first = scope_of(server.port, get("/scope"))
    second = scope_of(server.port, get("/scope"))
    assert first["state"]["token"] == "s3cret"
    assert "leak" not in second["state"]  # a (shallow) copy per request: keys set by one do not leak


def test_scope_headers_are_the_apps_own(server: ServerProcess) -> None:
    """Identical request heads are parsed once and shared (protocol/http11.py memo); an app that
    mutates scope["headers"] in place must change only its own request's copy."""
    request = b"GET /scope HTTP/1.1\r\nHost: memo.test\r\nX-Same: 1\r\n\r\n"
    for _ in range(3):
        assert scope_of(server.port, request)["headers"] == [["host", "memo.test"], ["x-same", "1"]]


def test_receive_streams_with_more_body(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        c.send(get("/echo", "Content-Length: 600000", method="POST"))
        for _ in range(6):
            c.send(b"y" * 100000)
        r = c.read_response()
        assert r.body == b"y" * 600000
        assert int(r.header("x-messages") or 0) > 1  # several http.request messages, more_body until the end
        r = c.request(get("/echo", method="POST"))  # no body: one message with more_body False
        assert r.body == b"" and r.header("x-messages") == b"1"


def test_httpx_roundtrip(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as client:
        r = client.post("/echo", content=iter([b"a" * 1000, b"b" * 1000]))  # chunked upload
        assert r.content == b"a" * 1000 + b"b" * 1000
        assert client.get("/stream").text == "one,two,three"


@pytest.mark.parametrize("path,message", [
    ("/error-before", "Exception in ASGI application"),
    ("/no-response", "returned without starting a response"),
    ("/bad-message", "http.response.body before http.response.start"),
    ("/bad-type", "'body' must be bytes"),  # the head was not written yet: still a clean 500
])
def test_failures_before_the_response_are_500(server: ServerProcess, path: str, message: str) -> None:
    with Conn(server.port) as c:
        r = c.request(get(path))
        assert r.status == 500 and r.header("connection") == b"close"
        assert c.is_closed()
    assert message in server.output()


@pytest.mark.parametrize("path,message", [
    ("/error-after", "after the response started"),
])
def test_failures_after_the_response_started_close(server: ServerProcess, path: str, message: str) -> None:
    with Conn(server.port) as c:
        c.send(get(path))
        assert c.read_to_close(timeout=10)  # never a hung connection
        data = c.buf
        assert data.startswith(b"HTTP/1.1 200")
        assert not data.endswith(b"0\r\n\r\n")  # the chunked body is visibly incomplete
    assert message in server.output()


def test_app_error_does_not_break_the_server(server: ServerProcess) -> None:
    with Conn(server.port) as c:
        assert c.request(get("/error-before")).status == 500
    with Conn(server.port) as c:
        assert c.request(get("/fine")).body == b"ok /fine"


def test_asginl_never_sends_lifespan(server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with server_factory(["--interface", "asginl", "core_apps:lifespan_asserting"],
                        env={"CORE_MARK_DIR": str(tmp_path)}) as srv:
        with Conn(srv.port) as c:
            s = json.loads(c.request(get("/scope")).body)
        assert s["state"] == {}
    assert not (tmp_path / "lifespan-called").exists()
