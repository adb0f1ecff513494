"""WebSockets: sans-IO handshake/codec tables, a differential test of the frame fast path against
wsproto, and end-to-end tests against the real server with the ``websockets`` client and raw sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import ssl
import time
import zlib
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import connect
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from django_granian.protocol.websocket import (
    Closed,
    FrameCodec,
    HandshakeError,
    accept_token,
    check_h1_handshake,
    check_h2_handshake,
    negotiate_extensions,
    offered_subprotocols,
)

from .conftest import start_server

APP = "ws_apps:echo"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
GOOD = [(b"host", b"x"), (b"upgrade", b"websocket"), (b"connection", b"keep-alive, Upgrade"),
        (b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13")]


def _without(name: bytes) -> list:
    return [h for h in GOOD if h[0] != name]


# -- sans-IO: handshake -----------------------------------------------------------------------------
@pytest.mark.parametrize("method,version,headers,status", [
    ("POST", "1.1", GOOD, 400),
    ("GET", "1.0", GOOD, 400),
    ("GET", "1.1", _without(b"upgrade"), 400),
    ("GET", "1.1", [*_without(b"upgrade"), (b"upgrade", b"h2c")], 400),
    ("GET", "1.1", _without(b"connection"), 400),
    ("GET", "1.1", _without(b"sec-websocket-key"), 400),
    ("GET", "1.1", [*_without(b"sec-websocket-key"), (b"sec-websocket-key", b"c2hvcnQ=")], 400),
    ("GET", "1.1", [*_without(b"sec-websocket-key"), (b"sec-websocket-key", b"not base64!!")], 400),
    ("GET", "1.1", [*GOOD, (b"sec-websocket-key", KEY)], 400),
    ("GET", "1.1", _without(b"sec-websocket-version"), 426),
    ("GET", "1.1", [*_without(b"sec-websocket-version"), (b"sec-websocket-version", b"8")], 426),
])
def test_h1_handshake_rejections(method, version, headers, status):
    with pytest.raises(HandshakeError) as info:
        check_h1_handshake(method, version, headers)
    assert info.value.status == status
    if status == 426:
        assert (b"sec-websocket-version", b"13") in info.value.headers


def test_h1_handshake_ok_and_accept_token():
    assert check_h1_handshake("GET", "1.1", GOOD) == KEY
    assert accept_token(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 1.3


def test_h2_handshake():
    check_h2_handshake("CONNECT", "websocket", [(b"sec-websocket-version", b"13")])
    for method, proto, version, status in [("GET", "websocket", b"13", 400), ("CONNECT", None, b"13", 400),
                                           ("CONNECT", "websocket", b"12", 426)]:
        with pytest.raises(HandshakeError) as info:
            check_h2_handshake(method, proto, [(b"sec-websocket-version", version)])
        assert info.value.status == status


@pytest.mark.parametrize("offers,enabled,expected", [
    ([], True, None),
    ([b"permessage-deflate"], False, None),
    ([b"permessage-deflate"], True, b"permessage-deflate"),
    ([b"permessage-deflate; client_max_window_bits"], True, b"permessage-deflate; client_max_window_bits=15"),
    ([b"x-unknown, permessage-deflate; server_max_window_bits=8, permessage-deflate"], True, b"permessage-deflate"),
    ([b"permessage-deflate; server_max_window_bits=10"], True, b"permessage-deflate; server_max_window_bits=10"),
    ([b"x-webkit-deflate-frame"], True, None),
])
def test_negotiate_extensions(offers, enabled, expected):
    value, exts = negotiate_extensions([(b"sec-websocket-extensions", o) for o in offers], enabled, 1000)
    assert value == expected
    assert len(exts) == (1 if expected else 0)


def test_offered_subprotocols():
    headers = [(b"sec-websocket-protocol", b"chat, superchat"), (b"sec-websocket-protocol", b" v2 ,")]
    assert offered_subprotocols(headers) == ["chat", "superchat", "v2"]


# -- sans-IO: frame codec ---------------------------------------------------------------------------
def _client(extensions=None) -> Connection:
    return Connection(ConnectionType.CLIENT, extensions)


def _frames_corpus(rng: random.Random) -> bytes:
    cli = _client()
    out = bytearray()
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        size = rng.choice([0, 1, 5, 125, 126, 127, 300, 65535, 65536, 70000])
        if kind < 0.35:
            out += cli.send(TextMessage(data="é" * (size // 2) + "x" * (size % 2)))
        elif kind < 0.7:
            out += cli.send(BytesMessage(data=bytes(rng.getrandbits(8) for _ in range(min(size, 2000)))))
        elif kind < 0.8:
            out += cli.send(Ping(payload=b"p" * rng.randint(0, 20)))
        elif kind < 0.9:  # a fragmented message with a ping in the middle
            out += cli.send(TextMessage(data="part1-", message_finished=False))
            out += cli.send(Ping(payload=b"mid"))
            out += cli.send(TextMessage(data="part2", message_finished=True))
        else:
            out += cli.send(BytesMessage(data=b"a" * 10, message_finished=False))
            out += cli.send(BytesMessage(data=b"b" * 200, message_finished=True))
    if rng.random() < 0.3:
        key = b"\x01\x02\x03\x04"
        out += bytes([0x81, 0x84]) + key + bytes(b ^ k for b, k in zip(b"\xff\xfe\xfd\xfc", key, strict=True))
    if rng.random() < 0.5:
        out += cli.send(CloseConnection(code=4000 + rng.randint(0, 99), reason="bye"))
    return bytes(out)


def _run_codec(data: bytes, cuts: list[int], fast: bool) -> tuple[list, bytes]:
    codec = FrameCodec(1 << 20)
    codec._fast = fast
    items: list = []
    out = bytearray()
    prev = 0
    for cut in [*cuts, len(data)]:
        items += codec.receive(data[prev:cut])
        out += codec.take_output()
        prev = cut
    return [(type(i).__name__, i.code, i.reason) if isinstance(i, Closed) else i for i in items], bytes(out)


def test_frame_fast_path_matches_wsproto():
    """The fast path (complete unfragmented masked data frames) must give exactly wsproto's results,
    whatever the frames and wherever the stream is split."""
    rng = random.Random(1234)
    for _ in range(300):
        data = _frames_corpus(rng)
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 6)))) if len(data) > 1 else []
        assert _run_codec(data, cuts, True) == _run_codec(data, cuts, False)


def test_codec_send_matches_wsproto():
    ref = Connection(ConnectionType.SERVER)
    codec = FrameCodec(100)
    for payload in ["", "hi", "é" * 100, b"", b"x" * 125, b"x" * 126, b"y" * 65535, b"z" * 65536]:
        event = TextMessage(data=payload) if isinstance(payload, str) else BytesMessage(data=payload)
        assert codec.send(payload) == bytes(ref.send(event))


def test_codec_ping_close_and_errors():
    cli = _client()
    codec = FrameCodec(1000)
    assert codec.receive(bytes(cli.send(Ping(payload=b"abc")))) == []
    assert codec.take_output() == b"\x8a\x03abc"  # pong with the same payload
    items = codec.receive(bytes(cli.send(CloseConnection(code=4001, reason="done"))))
    assert [(i.code, i.reason) for i in items] == [(4001, "done")]
    assert codec.take_output() == b"\x88\x02\x0f\xa1"  # answered with the same code
    # too big, in one frame and across fragments
    for frames in ([_client().send(BytesMessage(data=b"x" * 1001))],
                   [(c := _client()).send(TextMessage(data="x" * 600, message_finished=False)),
                    c.send(TextMessage(data="x" * 600))]):
        codec = FrameCodec(1000)
        items = codec.receive(b"".join(bytes(f) for f in frames))
        assert isinstance(items[-1], Closed) and items[-1].code == 1009
        assert codec.take_output()[:4] == b"\x88\x11\x03\xf1"  # Close 1009
    # invalid UTF-8 -> 1007, unmasked frame -> 1002
    codec = FrameCodec(1000)
    bad = bytes([0x81, 0x82]) + b"\x00\x00\x00\x00" + b"\xc3\x28"
    assert codec.receive(bad)[-1].code == 1007
    assert FrameCodec(1000).receive(b"\x81\x02hi")[-1].code == 1002


def test_deflate_bomb_is_bounded():
    from wsproto.extensions import PerMessageDeflate

    _, exts = negotiate_extensions([(b"sec-websocket-extensions", b"permessage-deflate")], True, 100_000)
    client_ext = PerMessageDeflate()
    client_ext.finalize("permessage-deflate")
    cli = _client([client_ext])
    codec = FrameCodec(100_000, exts)
    assert codec.receive(bytes(cli.send(TextMessage(data="a" * 90_000)))) == ["a" * 90_000]
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = comp.compress(b"\0" * 50_000_000) + comp.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert len(payload) < 100_000
    n = len(payload)
    length = bytes([0xFF]) + n.to_bytes(8, "big") if n > 65535 else bytes([0xFE]) + n.to_bytes(2, "big")
    frame = bytes([0xC2]) + length + b"\0\0\0\0" + payload
    items = codec.receive(frame)
    assert isinstance(items[-1], Closed) and items[-1].code == 1009


# -- end to end ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_server(["--interface", "asgi", APP], tmp_path=tmp_path_factory.mktemp("ws")) as srv:
        yield srv


def ws_url(srv, path: str = "/") -> str:
    return f"ws://127.0.0.1:{srv.port}{path}"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def raw_handshake(port: int, path: str = "/", extra: bytes = b"", head: bytes | None = None) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(head or (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                          b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n"))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return sock, data


def test_echo_and_scope(server):
    async def main():
        async with connect(ws_url(server, "/scope?a=1&b=%20"), subprotocols=["chat", "v2"], proxy=None) as ws:
            assert ws.subprotocol == "chat"
            scope = json.loads(await ws.recv())
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            big = os.urandom(300_000)
            await ws.send(big)
            assert await ws.recv() == big
            return scope, ws.response.headers

    scope, headers = run(main())
    assert scope["type"] == "websocket" and scope["scheme"] == "ws" and scope["http_version"] == "1.1"
    assert scope["path"] == "/scope" and scope["raw_path"] == "/scope" and scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == "" and scope["subprotocols"] == ["chat", "v2"]
    assert scope["asgi"]["version"] == "3.0"
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["client"][0] == "127.0.0.1" and scope["server"] == ["127.0.0.1", server.port]
    assert headers["sec-websocket-protocol"] == "chat"
    assert headers["sec-websocket-extensions"].startswith("permessage-deflate")  # offered by websockets


def test_headers_on_accept_and_no_subprotocol(server):
    async def main():
        async with connect(ws_url(server, "/headers"), proxy=None, compression=None) as ws:
            assert ws.subprotocol is None
            return ws.response.headers

    headers = run(main())
    assert headers["x-ws-hello"] == "world" and headers["set-cookie"] == "a=b"
    assert "sec-websocket-extensions" not in headers and "sec-websocket-protocol" not in headers


def test_close_from_app_with_code_and_reason(server):
    async def main():
        async with connect(ws_url(server, "/close?4001,see%20you"), proxy=None) as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd

    rcvd = run(main())
    assert (rcvd.code, rcvd.reason) == (4001, "see you")


def _last_disconnect(port: int) -> list:
    deadline = time.monotonic() + 10
    while True:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"GET /last-disconnect HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        records = json.loads(data.split(b"\r\n\r\n", 1)[1])
        if records or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def test_client_close_and_abrupt_disconnect_reach_the_app():
    with start_server(["--interface", "asgi", APP]) as srv:
        async def main():
            async with connect(ws_url(srv, "/record"), proxy=None) as ws:
                await ws.send("x")
                await ws.recv()
                await ws.close(4002, "client bye")

        run(main())
        assert _last_disconnect(srv.port) == [[4002, "client bye"]]
    with start_server(["--interface", "asgi", APP]) as srv:
        sock, head = raw_handshake(srv.port, "/record")
        assert head.startswith(b"HTTP/1.1 101 ")
        sock.close()  # no Close frame: 1006
        assert _last_disconnect(srv.port) == [[1006, ""]]


@pytest.mark.parametrize("path,status", [("/deny", 401), ("/reject", 403), ("/error", 500)])
def test_denial_responses(server, path, status):
    async def main():
        with pytest.raises(websockets.InvalidStatus) as info:
            async with connect(ws_url(server, path), proxy=None):
                pass
        return info.value.response

    response = run(main())
    assert response.status_code == status
    if path == "/deny":
        assert response.headers["x-denied"] == "yes"
        assert response.headers["content-type"] == "application/json"
        assert response.body == b'{"error":"nope"}'


def test_app_error_after_accept_closes_1011(server):
    async def main():
        async with connect(ws_url(server, "/error-after"), proxy=None) as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd.code

    assert run(main()) == 1011


def _masked(opcode_byte: int, payload: bytes) -> bytes:
    return bytes([opcode_byte, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # a zero mask


@pytest.mark.parametrize("bad", [
    _masked(0xA1, b"x"),  # RSV2 set, no extension negotiated (Autobahn 3.2)
    _masked(0x85, b""),  # reserved data opcode 5 (4.1.3)
    _masked(0x8B, b""),  # reserved control opcode 11 (4.2.3)
    _masked(0x00, b"x"),  # a continuation with nothing to continue (5.15 style)
])
def test_messages_before_a_protocol_violation_are_answered_first(server, bad):
    """Autobahn|Testsuite 'strict': a message that arrived in front of a broken frame (all in one packet) is
    still delivered and the app's echo goes out before the Close 1002 (failing first is 'NON-STRICT')."""
    sock, head = raw_handshake(server.port)
    assert head.startswith(b"HTTP/1.1 101")
    sock.sendall(_masked(0x81, b"Hello, world!") + bad + _masked(0x89, b""))
    data = b""
    while len(data) < 17 or len(data) < 17 + (data[16] & 0x7F):  # the echo (15 bytes) and a whole Close frame
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert data.startswith(b"\x81\x0dHello, world!"), data  # the echo, then
    assert data[15:16] == b"\x88" and data[17:19] == (1002).to_bytes(2, "big"), data  # Close 1002, no Pong


def test_ping_is_answered(server):
    async def main():
        async with connect(ws_url(server), proxy=None, ping_interval=None) as ws:
            latency = await asyncio.wait_for(await ws.ping(b"are you there"), 10)
            await ws.send("still open")
            assert await ws.recv() == "still open"
            return latency

    assert run(main()) >= 0


def test_bad_handshakes_raw(server):
    _, data = raw_handshake(server.port, head=b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")
    _, data = raw_handshake(server.port, head=b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\n"
                            b"Sec-WebSocket-Version: 8\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 426 ") and b"sec-websocket-version: 13\r\n" in data.lower()
    # not a GET: an ordinary HTTP request for the app
    _, data = raw_handshake(server.port, head=b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nContent-Length: 0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ")


def test_upgrade_after_keep_alive_request(server):
    """A normal request, then an upgrade on the same connection; the frame arrives in the same packet."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"plain http" not in data:
        data += sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 200 ")
    frame = bytes([0x81, 0x85]) + b"\0\0\0\0" + b"hello"
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n" + frame)
    data = b""
    while not data.endswith(b"\x81\x05hello"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in data
    sock.close()


def test_reading_is_paused_when_the_app_does_not_receive(server):
    sock, head = raw_handshake(server.port, "/slow")
    assert head.startswith(b"HTTP/1.1 101 ")
    sock.setblocking(False)
    frame = bytes([0x82, 0xFF]) + (65536).to_bytes(8, "big") + b"\0\0\0\0" + b"x" * 65536
    sent = 0
    deadline = time.monotonic() + 10
    stalled_since = None
    while time.monotonic() < deadline and sent < 1000 * len(frame):  # 64 MiB
        try:
            sent += sock.send(frame[sent % len(frame):])
            stalled_since = None
        except BlockingIOError:
            if stalled_since is None:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 0.5:
                break  # the server stopped reading
            time.sleep(0.02)
    sock.close()
    assert sent < 500 * len(frame), f"server kept reading {sent} bytes the app never consumed"


def test_options_max_size_deflate_ping_timeout():
    args = ["--interface", "asgi", "--ws-max-message-size", "1000", "--no-ws-per-message-deflate",
            "--ws-ping-interval", "0.2", "--ws-ping-timeout", "0.5", APP]
    with start_server(args) as srv:
        async def main():
            async with connect(ws_url(srv), proxy=None) as ws:
                assert "sec-websocket-extensions" not in ws.response.headers
                await asyncio.sleep(1.5)  # several server pings, answered by the client: still open
                await ws.send("x" * 1000)
                assert await ws.recv() == "x" * 1000
                await ws.send("x" * 1001)
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await ws.recv()
                return info.value.rcvd.code

        assert run(main()) == 1009
        # a peer that never answers pings is dropped
        sock, head = raw_handshake(srv.port)
        assert head.startswith(b"HTTP/1.1 101 ")
        got = b""
        t0 = time.monotonic()
        while chunk := sock.recv(65536):
            got += chunk
        assert got.startswith(b"\x89")  # a ping came first
        assert time.monotonic() - t0 < 8


def test_graceful_shutdown_closes_1001(tmp_path):
    with start_server(["--interface", "asgi", APP], tmp_path=tmp_path) as srv:
        async def main():
            async with connect(ws_url(srv), proxy=None) as ws:
                await ws.send("x")
                await ws.recv()
                srv.proc.send_signal(15)
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await ws.recv()
                return info.value.rcvd

        rcvd = run(main())
        assert rcvd.code == 1001
        assert srv.proc.wait(15) == 0


def test_no_ws_serves_upgrade_as_plain_http(tmp_path):
    with start_server(["--interface", "asgi", "--no-ws", APP], tmp_path=tmp_path) as srv:
        _, data = raw_handshake(srv.port)
        assert data.startswith(b"HTTP/1.1 200 ")


def test_wss(tmp_path):
    trustme = pytest.importorskip("trustme")
    if not (Path(__file__).parent.parent / "django_granian" / "server" / "tls.py").exists():
        pytest.skip("TLS (server/tls.py) is not available yet")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    args = ["--interface", "asgi", "--ssl-certificate", str(cert_path), "--ssl-keyfile", str(key_path), APP]
    with start_server(args, tmp_path=tmp_path) as srv:
        async def main():
            async with connect(f"wss://127.0.0.1:{srv.port}/scope", ssl=ctx, proxy=None) as ws:
                scope = json.loads(await ws.recv())
                await ws.send("secure")
                return scope, await ws.recv()

        scope, echoed = run(main())
        assert scope["scheme"] == "wss" and echoed == "secure"


def test_access_log_lines_for_handshakes(tmp_path):
    with start_server(["--interface", "asgi", "--access-log", APP], tmp_path=tmp_path) as srv:
        async def main():
            async with connect(ws_url(srv, "/?q=1"), proxy=None) as ws:
                await ws.send("x")
                await ws.recv()
            with pytest.raises(websockets.InvalidStatus):
                async with connect(ws_url(srv, "/deny"), proxy=None):
                    pass

        run(main())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "/deny" not in srv.output():
            time.sleep(0.05)
        lines = [line for line in srv.output().splitlines() if "GET /" in line]
        assert any('GET / HTTP/1.1" 101' in line for line in lines), lines
        assert any('GET /deny HTTP/1.1" 401' in line for line in lines), lines
