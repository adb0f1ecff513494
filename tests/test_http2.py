"""HTTP/2: sans-IO helpers (tables) and the real server with real clients (h2, httpx, curl, h2load)."""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack import Decoder, Encoder

from django_granian.protocol.errors import ProtocolError
from django_granian.protocol.h2conn import H2ServerConnection
from django_granian.protocol.http2 import (
    TABLE_SIZE_ZERO,
    FloodGuard,
    ResponseHeaderError,
    check_trailers,
    encode_fields,
    request_head,
    response_block,
    response_headers,
)
from tests.core_client import wait_until

APP = ["--interface", "asgi", "h2_apps:app"]
BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/p?q=1"), (b":authority", b"example.com")]


# -- sans-IO ------------------------------------------------------------------------------------

def test_request_head_fields():
    head = request_head([*BASE, (b"user-agent", b"t"), (b"cookie", b"a=1"), (b"cookie", b"b=2")], True)
    assert (head.method, head.raw_path, head.query, head.http_version) == ("GET", b"/p", b"q=1", "2")
    assert head.headers[0] == (b"host", b"example.com")  # :authority presented as host
    assert (b"cookie", b"a=1; b=2") in head.headers  # RFC 9113 8.2.3
    assert not head.has_body and head.upgrade is None
    post = request_head([(b":method", b"POST"), *BASE[1:], (b"content-length", b"5")], False)
    assert (post.content_length, post.chunked) == (5, False)
    streaming = request_head([(b":method", b"POST"), *BASE[1:]], False)
    assert streaming.chunked and streaming.has_body  # length unknown: read to END_STREAM
    ws = request_head([(b":method", b"CONNECT"), (b":protocol", b"websocket"), *BASE[1:]], False)
    assert ws.upgrade == b"websocket"
    assert request_head([(b":method", b"CONNECT"), (b":authority", b"h:443")], False).method == "CONNECT"


@pytest.mark.parametrize("headers", [
    BASE[1:],                                                    # no :method
    [BASE[0], BASE[1], BASE[3]],                                 # no :path
    [BASE[0], BASE[2], BASE[3]],                                 # no :scheme
    [BASE[0], (b":scheme", b"http"), (b":path", b""), BASE[3]],  # empty :path
    [*BASE, (b":method", b"GET")],                               # duplicate pseudo-header
    [BASE[0], (b"x", b"1"), *BASE[1:]],                          # pseudo-header after a regular one
    [*BASE, (b":status", b"200")],                               # response pseudo-header
    [*BASE, (b"X-Upper", b"1")],                                 # upper-case name
    [*BASE, (b"connection", b"keep-alive")],                     # connection-specific
    [*BASE, (b"transfer-encoding", b"chunked")],
    [*BASE, (b"te", b"gzip")],                                   # te other than trailers
    [*BASE, (b"x", b"a\r\nb")],                                  # CR/LF in a value
    [*BASE, (b"x", b" padded")],                                 # surrounding whitespace
    [*BASE, (b"content-length", b"abc")],
    [*BASE, (b"content-length", b"1"), (b"content-length", b"2")],
    [*BASE, (b":protocol", b"websocket")],                       # :protocol outside CONNECT
    [(b":method", b"CONNECT"), (b":path", b"/"), (b":authority", b"h")],  # plain CONNECT with :path
])
def test_request_head_malformed(headers):
    with pytest.raises(ProtocolError):
        request_head(headers, True)


def test_check_trailers():
    check_trailers([(b"x-sum", b"1")])
    for bad in ([(b":path", b"/")], [(b"X", b"1")], [(b"x", b"\n")]):
        with pytest.raises(ProtocolError):
            check_trailers(bad)


DEFAULTS = [(b"date", b"D"), (b"server", b"django-granian")]
NAMES = frozenset({b"date", b"server"})


@pytest.mark.parametrize(("given", "expected", "length"), [
    ([(b"Content-Type", b"text/plain")], [(b"content-type", b"text/plain"), *DEFAULTS], -1),
    ([(b"connection", b"close"), (b"transfer-encoding", b"chunked"), (b"keep-alive", b"x")], DEFAULTS, -1),
    ([(b"content-length", b"12")], [(b"content-length", b"12"), *DEFAULTS], 12),
    ([(b"Server", b"mine")], [(b"server", b"mine"), (b"date", b"D")], -1),
    ([(b"date", b"X")], [(b"date", b"X"), (b"server", b"django-granian")], -1),
])
def test_response_headers(given, expected, length):
    out, content_length = response_headers(200, given, DEFAULTS, NAMES)
    assert out == [(b":status", b"200"), *expected]
    assert content_length == length


@pytest.mark.parametrize("headers", [[(b"x", b"a\r\nb")], [(b"x", b"a\x00")], [(b"bad name", b"1")],
                                     [("str", b"1")], [(b"x", "str")], [(b"content-length", b"x")]])
def test_response_headers_rejected(headers):
    with pytest.raises(ResponseHeaderError):
        response_headers(200, headers, DEFAULTS, NAMES)


def test_flood_guard_buckets():
    guard = FloodGuard(0.0, reset_burst=10, reset_rate=1.0, control_burst=5, control_rate=1.0)
    assert all(guard.reset(0.0) for _ in range(10))
    assert not guard.reset(0.0)  # burst exhausted: rapid reset
    assert guard.reset(5.0)  # refilled over time
    assert all(guard.control(5.0) for _ in range(5))
    assert not guard.control(5.0)


class _Sink:
    def __getattr__(self, name):
        return lambda *args: None


def test_stateless_response_encoding_decodes_with_plain_hpack():
    """Response blocks (memoised per header set) decode with a plain hpack decoder after the
    connection's table size update to 0, and leave the peer's dynamic table empty."""
    rng = random.Random(7)
    names = [b"content-type", b"x-a", b"x-b", b"cache-control", b"set-cookie", b"etag"]
    decoder = Decoder()
    first = True
    for _ in range(2000):
        headers = [(n, b"v%d" % rng.randrange(6)) for n in rng.sample(names, 3)]
        status = rng.choice([200, 404, 301, 500])
        block, length, present = response_block(status, headers)
        if first:
            block, first = TABLE_SIZE_ZERO + block, False
        assert decoder.decode(block, raw=True) == [(b":status", str(status).encode()), *headers]
        assert (length, present) == (-1, 0)
        assert not decoder.header_table.dynamic_entries
    assert response_block(200, [(b"Date", b"x"), (b"content-length", b"3")])[1:] == (3, 1)
    generated = response_block(200, ((b"x-gen", b"1") for _ in range(1)))  # any iterable, read once
    assert decoder.decode(generated[0], raw=True) == [(b":status", b"200"), (b"x-gen", b"1")]
    assert decoder.decode(encode_fields([(b"x-sum", b"1")]), raw=True) == [(b"x-sum", b"1")]


def test_memoised_request_decoding_matches_plain_hpack():
    """The connection's memo of header blocks (valid while the dynamic table is unchanged) agrees
    with a plain decoder for random sequences with repeats, new values and table size changes."""
    rng = random.Random(11)
    names = [b"user-agent", b"x-a", b"x-b", b"accept", b"cookie"]
    conn = H2ServerConnection(_Sink())
    encoder, plain = Encoder(), Decoder()
    for i in range(3000):
        headers = [(b":method", b"GET"), (b":path", b"/%d" % rng.randrange(4))]
        headers += [(n, b"v%d" % rng.randrange(5)) for n in rng.sample(names, 3)]
        if i % 400 == 399:
            encoder.header_table_size = rng.choice([0, 256, 4096])
        block = encoder.encode(headers)
        assert list(conn._decode(block).headers) == plain.decode(block, raw=True) == headers


# -- end to end ---------------------------------------------------------------------------------

class H2Client:
    """A blocking h2 client over a socket, collecting events per stream."""

    def __init__(self, port: int, settings: dict | None = None, timeout: float = 15.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.closed = False
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.flush()
        self.events: list = []
        self.closed = False
        self.auto_ack = True

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def request(self, path: str, method: str = "GET", body: bytes | None = None, headers=(),
                end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":path", path), (":authority", "localhost"), *headers]
        self.conn.send_headers(sid, hdrs, end_stream=body is None and end)
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        view = memoryview(body)
        while view:
            window = self.conn.local_flow_control_window(sid)
            if window <= 0:
                self.pump(lambda: self.conn.local_flow_control_window(sid) > 0)
                continue
            size = min(window, self.conn.max_outbound_frame_size, len(view))
            self.conn.send_data(sid, view[:size].tobytes())
            view = view[size:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def pump(self, until, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed or time.monotonic() > deadline:
                raise AssertionError(f"condition not reached; events: {self.events[-5:]}")
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.closed = True
                continue
            for event in self.conn.receive_data(data):
                self.events.append(event)
                if isinstance(event, h2.events.ConnectionTerminated) and event.error_code == 0:
                    # h2 as a *client* refuses frames after GOAWAY; streams below last_stream_id
                    # legitimately continue (RFC 9113 6.8), so keep the connection usable here
                    self.conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
                if isinstance(event, h2.events.DataReceived) and self.auto_ack:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self.flush()

    def of(self, sid: int, kind=None) -> list:
        return [e for e in self.events if getattr(e, "stream_id", None) == sid and (kind is None or isinstance(e, kind))]

    def done(self, sid: int) -> bool:
        return bool(self.of(sid, h2.events.StreamEnded) or self.of(sid, h2.events.StreamReset))

    def response(self, sid: int) -> tuple[dict, bytes]:
        self.pump(lambda: self.done(sid))
        headers = dict(self.of(sid, h2.events.ResponseReceived)[0].headers)
        body = b"".join(e.data for e in self.of(sid, h2.events.DataReceived))
        return headers, body

    def goaway(self):
        found = [e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)]
        return found[0] if found else None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def h2srv(tmp_path_factory):
    from tests.conftest import start_server

    path = tmp_path_factory.mktemp("h2") / "file.bin"
    path.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    with start_server([*APP, "--http2-max-concurrent-streams", "50", "--http2-initial-stream-window-size",
                       "65535", "--http2-initial-connection-window-size", "131072"],
                      env={"H2_TEST_FILE": str(path)}, tmp_path=path.parent) as srv:
        srv.file = path
        yield srv


def test_prior_knowledge_basic_and_settings(h2srv):
    client = H2Client(h2srv.port)
    sid = client.request("/scope?x=1")
    headers, body = client.response(sid)
    assert headers[b":status"] == b"200" and headers[b"server"] == b"django-granian" and b"date" in headers
    info = json.loads(body)
    assert info["http_version"] == "2" and info["scheme"] == "http" and info["query_string"] == "x=1"
    assert ["host", "localhost"] in info["headers"]
    assert {"http.response.trailers", "http.response.early_hint", "http.response.pathsend"} <= set(info["extensions"])
    remote = client.conn.remote_settings
    assert remote.max_concurrent_streams == 50 and remote.initial_window_size == 65535
    assert remote.enable_connect_protocol == 1  # RFC 8441 advertised (websockets on)
    client.close()


def test_many_concurrent_streams_and_head(h2srv):
    client = H2Client(h2srv.port)
    sids = [client.request(f"/scope?i={i}") for i in range(40)]
    for i, sid in enumerate(sids):
        _, body = client.response(sid)
        assert json.loads(body)["query_string"] == f"i={i}"
    sid = client.request("/", method="HEAD")
    headers, body = client.response(sid)
    assert body == b"" and headers[b"content-length"] == b"13"
    client.close()


def test_request_and_response_flow_control(h2srv):
    """5 MiB up through a 64 KiB stream window (acknowledged as the app reads) and 5 MiB down."""
    client = H2Client(h2srv.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 65535})
    payload = bytes(random.Random(1).randbytes(5 * 1024 * 1024))
    sid = client.request("/echo", method="POST", body=payload)
    headers, body = client.response(sid)
    assert headers[b"x-echo-length"] == str(len(payload)).encode() and body == payload
    sid = client.request(f"/big?n={5 * 1024 * 1024}")
    headers, body = client.response(sid)
    assert len(body) == 5 * 1024 * 1024 and headers[b"content-length"] == b"5242880"
    client.close()


def test_slow_reader_holds_client_back(h2srv):
    """The server acknowledges request data only as the app consumes it: the client's windows close."""
    client = H2Client(h2srv.port)
    sid = client.request("/slow-reader", method="POST", end=False)
    sent = 0
    deadline = time.monotonic() + 10
    while client.conn.local_flow_control_window(sid) > 0 and time.monotonic() < deadline:
        size = min(client.conn.local_flow_control_window(sid), 16384)
        client.conn.send_data(sid, b"z" * size)
        client.flush()
        sent += size
    assert client.conn.local_flow_control_window(sid) <= 0
    assert sent < 4 * 1024 * 1024  # bounded by the windows, not by the server's memory
    client.conn.end_stream(sid)
    client.flush()
    _, body = client.response(sid)
    assert int(body) == sent
    client.close()


def test_trailers_early_hints_pathsend(h2srv):
    client = H2Client(h2srv.port)
    sid = client.request("/trailers", headers=[("te", "trailers")])
    headers, body = client.response(sid)
    assert body == b"body-more"
    assert dict(client.of(sid, h2.events.TrailersReceived)[0].headers) == {b"x-checksum": b"abc123"}
    sid = client.request("/early")
    headers, body = client.response(sid)
    info = client.of(sid, h2.events.InformationalResponseReceived)
    assert dict(info[0].headers)[b":status"] == b"103" and b"rel=preload" in dict(info[0].headers)[b"link"]
    assert body == b"hinted"
    sid = client.request("/pathsend")
    headers, body = client.response(sid)
    assert body == h2srv.file.read_bytes() and headers[b"content-length"] == b"1048576"
    client.close()


def test_bad_response_header_is_500_and_malformed_request_is_reset(h2srv):
    client = H2Client(h2srv.port)
    sid = client.request("/bad-header")
    headers, _ = client.response(sid)
    assert headers[b":status"] == b"500"
    # a malformed request (upper-case header name) is a stream error, the connection survives
    client.conn.config.validate_outbound_headers = False
    client.conn.config.normalize_outbound_headers = False
    bad = client.request("/", headers=[("X-Upper", "1")])
    client.pump(lambda: client.done(bad))
    assert client.of(bad, h2.events.StreamReset)[0].error_code == ErrorCodes.PROTOCOL_ERROR
    headers, _ = client.response(client.request("/"))
    assert headers[b":status"] == b"200"
    client.close()


def test_rapid_reset_gets_goaway_enhance_your_calm(h2srv):
    client = H2Client(h2srv.port)
    for _ in range(1000):
        sid = client.request("/slow?5")
        client.conn.reset_stream(sid, ErrorCodes.CANCEL)
    client.flush()
    client.pump(lambda: client.goaway() is not None or client.closed)
    assert client.goaway() is not None and client.goaway().error_code == ErrorCodes.ENHANCE_YOUR_CALM
    client.close()
    fresh = H2Client(h2srv.port)  # the server itself is fine
    assert fresh.response(fresh.request("/"))[1] == b"Hello, world!"
    fresh.close()


def test_streams_above_the_limit_are_refused_not_fatal(h2srv):
    """RFC 9113 section 5.1.2: the 51st concurrent stream (limit 50) gets REFUSED_STREAM; the others
    and the connection carry on."""
    from collections import deque

    client = H2Client(h2srv.port)
    client.pump(lambda: client.conn.remote_settings.max_concurrent_streams == 50)
    client.conn.remote_settings._settings[SettingCodes.MAX_CONCURRENT_STREAMS] = deque([1000])  # let it overshoot
    slow = [client.request("/slow?0.5") for _ in range(50)]
    extra = client.request("/")
    client.pump(lambda: client.done(extra))
    assert client.of(extra, h2.events.StreamReset)[0].error_code == ErrorCodes.REFUSED_STREAM
    for sid in slow:
        assert client.response(sid)[1] == b"slow done"
    assert client.response(client.request("/"))[1] == b"Hello, world!"
    client.close()


def test_ping_flood_gets_goaway(h2srv):
    client = H2Client(h2srv.port)
    client.auto_ack = True
    for i in range(3000):
        client.conn.ping(b"%08d" % i)
    client.flush()
    client.pump(lambda: client.goaway() is not None or client.closed)
    assert client.goaway() is not None and client.goaway().error_code == ErrorCodes.ENHANCE_YOUR_CALM
    client.close()


def test_websocket_over_extended_connect(h2srv):
    """RFC 8441: CONNECT + :protocol websocket, frames in DATA."""
    client = H2Client(h2srv.port)
    client.pump(lambda: client.conn.remote_settings.enable_connect_protocol == 1)
    sid = client.request("/ws", method="CONNECT", end=False,
                         headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")])
    client.pump(lambda: bool(client.of(sid, h2.events.ResponseReceived)))
    assert dict(client.of(sid, h2.events.ResponseReceived)[0].headers)[b":status"] == b"200"
    # a masked text frame "hello"
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"hello"))
    client.conn.send_data(sid, b"\x81\x85" + mask + payload)
    client.flush()
    client.pump(lambda: b"hello" in b"".join(e.data for e in client.of(sid, h2.events.DataReceived)))
    assert b"".join(e.data for e in client.of(sid, h2.events.DataReceived)) == b"\x81\x05hello"
    client.close()


def test_httpx_http2_get_and_post(h2srv):
    with httpx.Client(http1=False, http2=True, base_url=h2srv.url, timeout=15) as client:  # prior knowledge
        r = client.get("/scope")
        assert r.http_version == "HTTP/2" and r.json()["http_version"] == "2"
        r = client.post("/echo", content=b"a" * 300_000)
        assert r.http_version == "HTTP/2" and r.content == b"a" * 300_000


def test_h2c_upgrade_with_curl(h2srv):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    out = subprocess.run(["curl", "-sS", "-i", "--http2", f"{h2srv.url}/scope"], capture_output=True, timeout=20)
    text = out.stdout.decode()
    assert "101 Switching Protocols" in text and "HTTP/2 200" in text
    assert json.loads(text[text.index("{"):])["http_version"] == "2"
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", f"{h2srv.url}/"], capture_output=True, timeout=20)
    assert out.stdout == b"Hello, world!"


def test_h2load_many_streams(h2srv):
    if shutil.which("h2load") is None:
        pytest.skip("h2load not installed")
    out = subprocess.run(["h2load", "-n", "3000", "-c", "4", "-m", "10", f"{h2srv.url}/"], capture_output=True,
                         timeout=60, text=True).stdout
    assert "3000 succeeded, 0 failed, 0 errored" in out, out


def test_http2_only_mode_and_wsgi(server_factory):
    with server_factory(["--interface", "wsgi", "--http", "2", "h2_apps:wsgi"]) as srv:
        client = H2Client(srv.port)
        headers, body = client.response(client.request("/", method="POST", body=b"data"))
        assert body == b"wsgi:HTTP/2:http:data"
        client.close()
        # HTTP/1.1 is not spoken in --http 2 mode
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            data = sock.recv(65536)
            assert not data.startswith(b"HTTP/1.1")


def test_http1_mode_ignores_h2c(server_factory):
    with server_factory([*APP, "--http", "1"]) as srv:
        out = subprocess.run(["curl", "-sS", "-i", "--http2", f"{srv.url}/"], capture_output=True, timeout=20)
        assert out.stdout.startswith(b"HTTP/1.1 200")


def test_graceful_shutdown_goaway_lets_streams_finish(server_factory):
    with server_factory(APP) as srv:
        client = H2Client(srv.port)
        assert client.response(client.request("/"))[1] == b"Hello, world!"
        sid = client.request("/slow?1.5")
        wait_until(srv.logged("slow started"))
        srv.proc.send_signal(signal.SIGTERM)
        client.pump(lambda: client.goaway() is not None)
        assert client.goaway().error_code == ErrorCodes.NO_ERROR
        headers, body = client.response(sid)
        assert body == b"slow done"
        srv.proc.wait(20)
        client.close()


def test_adaptive_window_grows_with_the_bandwidth_delay_product(server_factory):
    args = [*APP, "--http2-adaptive-window", "--http2-initial-stream-window-size", "65535",
            "--http2-initial-connection-window-size", "65535"]
    with server_factory(args) as srv:
        client = H2Client(srv.port)
        client.pump(lambda: client.conn.remote_settings.initial_window_size == 65535)
        payload = b"w" * (4 * 1024 * 1024)
        headers, body = client.response(client.request("/echo", method="POST", body=payload))
        assert body == payload
        assert client.conn.remote_settings.initial_window_size > 65535  # grown by SETTINGS
        assert any(isinstance(e, h2.events.PingReceived) for e in client.events)  # the BDP probes
        client.close()


def test_keep_alive_ping_and_idle(server_factory):
    with server_factory([*APP, "--http2-keep-alive-interval", "500", "--http2-keep-alive-timeout", "1"]) as srv:
        client = H2Client(srv.port)
        client.response(client.request("/"))
        client.pump(lambda: any(isinstance(e, h2.events.PingReceived) for e in client.events), timeout=10)
        # stop answering (what arrives is read and dropped): no PING ACKs -> the server closes the connection
        client.sock.settimeout(0.2)

        def closed() -> bool:
            try:
                return client.sock.recv(65536) == b""
            except TimeoutError:
                return False
            except OSError:
                return True

        wait_until(closed, timeout=10, interval=0.3, what="the server closing the connection")
        client.close()


def test_server_answered_streams_are_logged(server_factory):
    """A body over --limit-request-body is answered 413 by the server for the app: the exchange is in
    the access log once, with its method and path, like any response."""
    with server_factory([*APP, "--access-log", "--limit-request-body", "10"]) as srv:
        client = H2Client(srv.port)
        sid = client.request("/echo", method="POST", body=b"x" * 20)
        headers, _ = client.response(sid)
        assert headers[b":status"] == b"413"
        client.close()
        line = wait_until(lambda: [ln for ln in srv.output().splitlines() if '"POST /echo HTTP/2"' in ln])
        assert len(line) == 1 and '" 413 ' in line[0], line


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(type, payload) of the complete HTTP/2 frames in ``data``."""
    frames, pos = [], 0
    while len(data) - pos >= 9:
        length, ftype = int.from_bytes(data[pos:pos + 3], "big"), data[pos + 3]
        frames.append((ftype, data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return frames


def test_invalid_preface_on_the_auto_port_gets_goaway_not_a_400(h2srv):
    """h2spec 3.5/2 on an ``--http auto`` port: a first line that is no HTTP/1.x request at all is an invalid
    HTTP/2 preface, answered with SETTINGS + GOAWAY(PROTOCOL_ERROR) (a 400 would be unreadable to the
    HTTP/2 client: h2spec reported "unexpected EOF"). HTTP/0.9-style and wrong-version lines, and any bad
    line after a first HTTP/1.1 request, stay HTTP/1.1 errors."""
    from tests.conftest import http_request

    frames = _frames(http_request(h2srv.port, b"INVALID CONNECTION PREFACE\r\n\r\n"))
    assert [t for t, _ in frames] == [4, 8, 7] or [t for t, _ in frames] == [4, 7], frames
    assert frames[-1][1][4:8] == (1).to_bytes(4, "big")  # GOAWAY(PROTOCOL_ERROR)
    assert http_request(h2srv.port, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")[:9] != b"HTTP/1.1 "  # preface start, then junk
    assert _frames(http_request(h2srv.port, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"))[-1][0] == 7
    for line in (b"GET /", b"GET / HTTP/2.0", b"GET / http/1.1", b"GET  / HTTP/1.1"):
        assert http_request(h2srv.port, line + b"\r\nHost: x\r\n\r\n").startswith((b"HTTP/1.1 400", b"HTTP/1.1 505"))
    after = http_request(h2srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nINVALID CONNECTION PREFACE\r\n\r\n")
    assert after.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 400" in after
