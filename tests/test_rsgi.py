"""RSGI interface: every protocol method against the real server (HTTP/1.1; HTTP/2 and WebSocket below)."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from .conftest import http_request
from .core_client import wait_until


@pytest.fixture
def rsgi(server_factory, tmp_path):
    data = tmp_path / "data.txt"
    data.write_bytes(b"0123456789" * 1000)
    marker = tmp_path / "marker.txt"
    env = {"RSGI_FILE": str(data), "RSGI_MARKER": str(marker)}
    with server_factory(["rsgi_apps:app"], env=env) as srv:  # interface auto-detected from __rsgi__
        srv.marker = marker
        srv.data = data
        yield srv


def test_detected_and_initialised(rsgi):
    scope = httpx.get(rsgi.url + "/scope?a=%20b", headers={"x-multi": "1"}).json()
    assert scope["inited"] is True
    assert "Serving RSGI app" in rsgi.output()
    assert scope["proto"] == "http" and scope["http_version"] == "1.1" and scope["scheme"] == "http"
    assert scope["method"] == "GET" and scope["path"] == "/scope" and scope["query_string"] == "a=%20b"
    assert scope["server"] == f"127.0.0.1:{rsgi.port}"
    assert scope["client"].startswith("127.0.0.1:")
    assert scope["authority"] == f"127.0.0.1:{rsgi.port}"
    assert scope["user_agent"].startswith("python-httpx")
    assert scope["has_host"] is True


def test_multi_value_headers_and_http10(rsgi):
    raw = http_request(rsgi.port, b"GET /scope HTTP/1.0\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    data = json.loads(body)
    assert data["multi"] == ["a", "b"] and data["http_version"] == "1" and data["authority"] is None


def test_response_methods(rsgi):
    with httpx.Client(base_url=rsgi.url) as client:
        r = client.get("/empty")
        assert r.status_code == 204 and r.headers["x-empty"] == "1" and r.content == b""
        r = client.get("/str")
        assert r.status_code == 200 and r.text == "héllo" and r.headers["content-length"] == str(len("héllo".encode()))
        r = client.get("/bytes")
        assert r.status_code == 201 and r.content == b"\x00\x01bytes"
        r = client.get("/stream")
        assert r.text == "part0;part1;part2;part3;part4;end"
        assert r.headers["transfer-encoding"] == "chunked"


def test_request_body_call_and_iteration(rsgi):
    payload = b"x" * 300_000
    with httpx.Client(base_url=rsgi.url) as client:
        assert client.post("/echo", content=payload).content == payload
        chunked = client.post("/echo", content=iter([b"a" * 1000, b"b" * 2000]))
        assert chunked.content == b"a" * 1000 + b"b" * 2000
        result = client.post("/echo-iter", content=payload).json()
        assert result["total"] == len(payload) and result["chunks"] >= 1
        assert client.post("/echo", content=b"").content == b""


def test_file_responses(rsgi):
    with httpx.Client(base_url=rsgi.url) as client:
        r = client.get("/file")
        assert r.status_code == 200 and r.content == rsgi.data.read_bytes()
        r = client.get("/file-range")
        assert r.status_code == 206 and r.content == rsgi.data.read_bytes()[2:6]
        assert r.headers["content-length"] == "4"


def test_errors_give_500_and_keep_serving(rsgi):
    with httpx.Client(base_url=rsgi.url) as client:
        assert client.get("/error").status_code == 500
        assert client.get("/nothing").status_code == 500
        r = client.get("/twice")
        assert r.status_code == 200
        assert client.get("/str").status_code == 200
    out = rsgi.output()
    assert "Exception in RSGI application" in out and "RuntimeError: boom" in out
    assert "RSGI app returned without a response" in out
    assert "a response was already sent" in out


def test_client_disconnect_is_reported(rsgi):
    sock = socket.create_connection(("127.0.0.1", rsgi.port))
    sock.sendall(b"GET /disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(rsgi.logged("waiting for the disconnect"))  # the request is in the app
    sock.close()
    wait_until(lambda: rsgi.marker.exists() and "disconnected" in rsgi.marker.read_text(), what="the app told")


def test_rsgi_del_runs_on_shutdown(rsgi):
    httpx.get(rsgi.url + "/str")
    assert rsgi.stop() == 0
    assert rsgi.marker.read_text().splitlines() == ["init", "del"]


def test_access_log_under_rsgi(server_factory):
    with server_factory(["--access-log", "rsgi_apps:app"]) as srv:
        httpx.get(srv.url + "/bytes?q=1")
        line = [ln for ln in wait_until(srv.logged("/bytes")).splitlines() if "/bytes" in ln][0]
    assert '"GET /bytes HTTP/1.1" 201' in line


def test_plain_coroutine_with_explicit_interface(server_factory):
    with server_factory(["--interface", "rsgi", "rsgi_apps:plain"]) as srv:
        assert httpx.get(srv.url).text == "plain"


def test_websocket_echo_http1(rsgi):
    import asyncio

    import websockets

    async def talk():
        async with websockets.connect(f"ws://127.0.0.1:{rsgi.port}/ws") as ws:
            await ws.send("hello")
            text = await ws.recv()
            await ws.send(b"\x00bin")
            data = await ws.recv()
            return text, data

    assert asyncio.run(talk()) == ("hello", b"\x00bin")


def test_http2_and_websocket_over_h2(server_factory, tmp_path):
    import h2.config
    import h2.connection
    import h2.events

    data = tmp_path / "data.txt"
    data.write_bytes(b"abcdefgh")
    with server_factory(["--http", "auto", "rsgi_apps:app"], env={"RSGI_FILE": str(data)}) as srv:
        with httpx.Client(http2=True, http1=False, base_url=srv.url) as client:
            scope = client.get("/scope").json()
            assert scope["http_version"] == "2"
            assert client.post("/echo", content=b"x" * 70000).content == b"x" * 70000
            assert client.get("/stream").text == "part0;part1;part2;part3;part4;end"
            assert client.get("/file-range").content == b"cdef"
        # RFC 8441 extended CONNECT: a WebSocket over an HTTP/2 stream
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        settings_ok = False
        deadline = time.monotonic() + 5
        while not settings_ok and time.monotonic() < deadline:
            for event in conn.receive_data(sock.recv(65536)):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settings_ok = True
            sock.sendall(conn.data_to_send())
        conn.send_headers(1, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                              (":path", "/ws"), (":authority", "localhost"), ("sec-websocket-version", "13")])
        sock.sendall(conn.data_to_send())
        status = None
        received = b""
        # a masked text frame "hi"
        frame = bytes([0x81, 0x82, 1, 2, 3, 4]) + bytes(b ^ m for b, m in zip(b"hi", [1, 2, 3, 4], strict=False))
        sent = False
        while time.monotonic() < deadline and b"hi" not in received:
            for event in conn.receive_data(sock.recv(65536)):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    received += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
            if status == b"200" and not sent:
                conn.send_data(1, frame)
                sent = True
            sock.sendall(conn.data_to_send())
        sock.close()
        assert status == b"200"
        assert received == bytes([0x81, 0x02]) + b"hi"
