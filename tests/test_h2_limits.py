"""HTTP/2 streams under the limits HTTP/1.1 has: ``--backpressure`` (per-worker slots, one FIFO shared
with HTTP/1.1 requests) and ``--request-body-timeout`` (a stalled request body), against the real server."""

from __future__ import annotations

import json
import socket
import threading
import time

import h2.events
from h2.errors import ErrorCodes

from django_granian.protocol.h2conn import WINDOW_UPDATE, H2ServerConnection, frame
from tests.core_client import wait_until
from tests.test_http2 import H2Client

APP = ["--interface", "asgi", "h2_apps:app"]
PARKED = "waits for a --backpressure slot"  # the server's debug line for a request that waits for a slot


def parked(srv, n: int) -> None:
    """Wait until the server has said ``n`` times that a request waits for a slot (needs --log-level debug)."""
    wait_until(lambda: srv.output().count(PARKED) >= n, what=lambda: f"{n} parked requests in:\n{srv.output()}")


def seen(port: int) -> dict:
    """What the app saw (a request too: it takes a --backpressure slot)."""
    client = H2Client(port)
    try:
        return json.loads(client.response(client.request("/__seen"))[1])
    finally:
        client.close()


def h1_get(port: int, path: str, out: list) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    out.append(data)


def listen(client: H2Client, seconds: float) -> None:
    """Receive whatever the server sends for a while."""
    deadline = time.monotonic() + seconds
    client.sock.settimeout(0.05)
    try:
        client.pump(lambda: time.monotonic() > deadline)
    finally:
        client.sock.settimeout(15.0)


# -- --backpressure -----------------------------------------------------------------------------------

def test_backpressure_streams_and_http1_share_one_fifo(server_factory):
    """With one slot: a running stream, a parked stream with a body (its window stays closed while it
    waits), and an HTTP/1.1 request behind it run one at a time, in arrival order, none failing."""
    args = [*APP, "--backpressure", "1", "--http2-initial-stream-window-size", "65535", "--log-level", "debug"]
    with server_factory(args) as srv:
        client = H2Client(srv.port)
        a = client.request("/counted?a&1.5")
        wait_until(srv.logged("counted a started"))  # (/__seen would wait for a slot too)
        b = client.request("/counted?b", method="POST", body=b"x" * 1000, end=False)
        parked(srv, 1)
        results: list[bytes] = []
        h1 = threading.Thread(target=h1_get, args=(srv.port, "/counted?c", results))
        h1.start()
        parked(srv, 2)
        listen(client, 0.3)
        assert not client.of(b, h2.events.WindowUpdated)  # nothing of b's window given back while it waits
        # more than the window: the client blocks until b is dispatched, after a
        client.send_body(b, b"y" * 200_000, end=True)
        _, body_a = client.response(a)
        headers_b, body_b = client.response(b)
        h1.join(20)
        events = client.events
        first_update = min(events.index(e) for e in client.of(b, h2.events.WindowUpdated))
        assert first_update > events.index(client.of(a, h2.events.StreamEnded)[0])  # b's window: once it ran
        assert body_a == b"a:"
        assert headers_b[b":status"] == b"200" and body_b == b"b:" + b"x" * 1000 + b"y" * 200_000
        assert len(results) == 1 and results[0].startswith(b"HTTP/1.1 200") and results[0].endswith(b"\r\n\r\nc:")
        info = seen(srv.port)
        assert info["started"] == ["a", "b", "c"] and info["max"] == 1 and info["active"] == 0
        client.close()


def test_backpressure_parked_stream_reset_or_connection_closed_gives_up_its_place(server_factory):
    with server_factory([*APP, "--backpressure", "1", "--log-level", "debug"]) as srv:
        client = H2Client(srv.port)
        a = client.request("/counted?a&1")
        wait_until(srv.logged("counted a started"))  # (/__seen would wait for a slot too)
        b = client.request("/counted?b")  # parked, then reset by the client
        other = H2Client(srv.port)
        other.request("/counted?d", method="POST", body=b"partial", end=False)  # parked, then its connection closes
        parked(srv, 2)
        client.conn.reset_stream(b, ErrorCodes.CANCEL)
        client.flush()
        other.close()
        c = client.request("/counted?c")
        for sid, tag in ((a, b"a:"), (c, b"c:")):
            headers, body = client.response(sid)
            assert headers[b":status"] == b"200" and body == tag
        # no slot leaked (the follow-ups would hang) and none handed out twice (max stays 1)
        e, f = client.request("/counted?e"), client.request("/counted?f")
        assert client.response(e)[1] == b"e:" and client.response(f)[1] == b"f:"
        info = seen(srv.port)
        assert info["started"] == ["a", "c", "e", "f"] and info["max"] == 1 and info["active"] == 0
        client.close()


def test_backpressure_default_does_not_park(server_factory):
    with server_factory(APP) as srv:
        client = H2Client(srv.port)
        sids = [client.request(f"/counted?{i}&0.3") for i in range(20)]
        for i, sid in enumerate(sids):
            assert client.response(sid)[1] == b"%d:" % i
        assert seen(srv.port)["max"] == 20
        client.close()


# -- --request-body-timeout -----------------------------------------------------------------------------

def _stalled(client: H2Client, path: str) -> tuple[int, float]:
    sid = client.request(path, method="POST", body=b"abc", end=False, headers=[("content-length", "10")])
    start = time.monotonic()
    client.pump(lambda: client.done(sid))
    return sid, time.monotonic() - start


def test_request_body_timeout(server_factory):
    """A stalled body gets 408 (or RST_STREAM(CANCEL) once the response started) within the timeout (the
    clock ticks once a second) and the app sees a disconnect; a trickling client, an app that does not
    read yet, and a stream waiting for a --backpressure slot are never cut off."""
    with server_factory([*APP, "--request-body-timeout", "2"]) as srv:
        client = H2Client(srv.port)
        sid, elapsed = _stalled(client, "/watch-body")
        headers = dict(client.of(sid, h2.events.ResponseReceived)[0].headers)
        assert headers[b":status"] == b"408" and client.of(sid, h2.events.StreamEnded)
        assert 1 <= elapsed <= 5

        sid, elapsed = _stalled(client, "/watch-body?started")
        assert dict(client.of(sid, h2.events.ResponseReceived)[0].headers)[b":status"] == b"200"
        reset = client.of(sid, h2.events.StreamReset)
        assert reset and reset[0].error_code == ErrorCodes.CANCEL and not client.of(sid, h2.events.StreamEnded)
        assert 1 <= elapsed <= 5

        sid = client.request("/watch-body", method="POST", body=b"", end=False, headers=[("content-length", "6")])
        for byte in b"abcdef":  # 3 s in all, 0.5 s apart: each DATA frame restarts the timer
            time.sleep(0.5)
            client.conn.send_data(sid, bytes([byte]), end_stream=byte == ord("f"))
            client.flush()
        headers, body = client.response(sid)
        assert headers[b":status"] == b"200" and body == b"6"

        # the app never reads: not a stalled client
        sid = client.request("/slow?3.5", method="POST", body=b"abc", end=False, headers=[("content-length", "10")])
        headers, body = client.response(sid)
        assert headers[b":status"] == b"200" and body == b"slow done"

        # the app reads, then stops for 3.5 s: flow control holds the client back, which is no stall
        sid = client.request("/sleep-then-read?3.5", method="POST", body=b"", end=False)
        client.send_body(sid, b"z" * (2 << 20), end=True)
        headers, body = client.response(sid)
        assert headers[b":status"] == b"200" and body == b"%d" % (2 << 20)

        assert seen(srv.port)["body"] == ["disconnect", "disconnect", 6]
        client.close()


def test_request_body_timeout_does_not_run_while_parked(server_factory):
    with server_factory([*APP, "--request-body-timeout", "2", "--backpressure", "1"]) as srv:
        client = H2Client(srv.port)
        a = client.request("/counted?a&3.5")
        wait_until(srv.logged("counted a started"))
        b = client.request("/watch-body", method="POST", body=b"abc", end=False, headers=[("content-length", "6")])
        assert client.response(a)[1] == b"a:"  # b waited 3.5 s for its slot
        client.send_body(b, b"def", end=True)
        headers, body = client.response(b)
        assert headers[b":status"] == b"200" and body == b"6"
        client.close()


# -- sans-IO: the stream-only acknowledgement used for parked streams ------------------------------------

class _Handler:
    def __getattr__(self, name):
        return lambda *args: None


def test_ack_stream_gives_back_only_the_stream_window():
    import h2.config
    import h2.connection

    server = H2ServerConnection(_Handler(), initial_window_size=65535, connection_window=65535)
    server.initiate()
    server.data_to_send()
    peer = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    peer.initiate_connection()
    peer.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "x")])
    for _ in range(4):
        peer.send_data(1, b"d" * 10000)
    server.receive(peer.data_to_send())
    server.data_to_send()  # SETTINGS ACK
    server.ack(0, 40000)  # the connection's share
    out = server.data_to_send()
    assert out == frame(WINDOW_UPDATE, 0, 0, (40000).to_bytes(4, "big"))
    server.ack_stream(1, 40000)  # later, the stream's
    assert server.data_to_send() == frame(WINDOW_UPDATE, 0, 1, (40000).to_bytes(4, "big"))
    assert server.recv_window == 65535 and server.streams[1].recv_window == 65535
