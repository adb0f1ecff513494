"""Slow clients never hold a WSGI thread: request bodies are read whole on the event loop before a pool
thread gets the request (in memory up to --request-body-buffer-size, then in a temporary file), and a
slow reader of a large response does not hold the thread either. Every test runs the app with ONE
thread: while a slow client is in progress, another request is answered only if that thread is free.
No timing is asserted: the slow client is held back until the other request has been answered."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path
from typing import Iterator

import h2.config
import h2.connection
import h2.events
import pytest

from .conftest import ServerProcess, start_server
from .core_client import Conn, get

BODY = bytes(range(256)) * 400  # 100 KiB
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("buffering")
    spool = tmp / "spool"
    spool.mkdir()
    with start_server(["--interface", "wsgi", "filter_apps:wsgi", "--blocking-threads", "1",
                       "--request-body-buffer-size", "16k", "--request-body-temp-dir", str(spool),
                       "--limit-request-body", "200k"], tmp_path=tmp) as server:
        server.spool = spool  # type: ignore[attr-defined]
        yield server


def fast_get(srv: ServerProcess) -> bytes:
    """A request that needs the only pool thread (it fails after 15 s if the thread is held)."""
    with Conn(srv.port, timeout=15) as c:
        return c.request(get("/fast")).body


class SlowUpload(threading.Thread):
    """POSTs BODY at about 10 KB/s up to ``hold`` bytes, then waits for ``release`` before the rest."""

    def __init__(self, port: int, hold: int, chunked: bool = False) -> None:
        super().__init__(daemon=True)
        self.port, self.hold, self.chunked = port, hold, chunked
        self.release = threading.Event()
        self.holding = threading.Event()
        self.response: bytes | None = None

    def run(self) -> None:
        with Conn(self.port, timeout=30) as c:
            framing = "Transfer-Encoding: chunked" if self.chunked else f"Content-Length: {len(BODY)}"
            c.send(get("/upload-info", framing, method="POST"))
            for i in range(0, len(BODY), 1024):
                if i == self.hold:
                    self.holding.set()
                    self.release.wait(30)
                piece = BODY[i:i + 1024]
                c.send(b"%x\r\n%s\r\n" % (len(piece), piece) if self.chunked else piece)
                if i < self.hold:
                    self.release.wait(0.1)  # ~10 KB/s until the hold point
            if self.chunked:
                c.send(b"0\r\n\r\n")
            self.response = c.read_response().body


@pytest.mark.parametrize("chunked", [False, True])
def test_a_slow_upload_does_not_hold_the_thread(srv: ServerProcess, chunked: bool) -> None:
    upload = SlowUpload(srv.port, hold=20 * 1024, chunked=chunked)
    upload.start()
    assert upload.holding.wait(30)
    assert fast_get(srv) == b"fast"   # answered while the upload is still incomplete
    assert fast_get(srv) == b"fast"
    upload.release.set()
    upload.join(30)
    info = json.loads(upload.response or b"{}")
    assert info["size"] == len(BODY) and info["sha256"] == SHA
    assert info["content_length"] == str(len(BODY))  # known once buffered, also for a chunked upload
    assert info["spooled"] is True                     # 100 KiB > --request-body-buffer-size 16k ...
    assert info["file"].startswith(str(srv.spool))     # ... in --request-body-temp-dir
    assert info["file"].endswith("(deleted)")          # anonymous: nothing is left behind
    assert list(srv.spool.iterdir()) == []  # type: ignore[attr-defined]


def test_small_bodies_stay_in_memory(srv: ServerProcess) -> None:
    with Conn(srv.port) as c:
        info = json.loads(c.request(get("/upload-info", method="POST", body=b"x" * 1000)).body)
    assert info["size"] == 1000 and info["spooled"] is False


@pytest.mark.parametrize(("case", "framing", "split"), [
    ("length-with-head", "length", False), ("length-after-head", "length", True),
    ("chunked-with-head", "chunked", False), ("chunked-after-head", "chunked", True),
    ("spooled-with-head", "spooled", False)])
def test_the_app_runs_once_per_request(srv: ServerProcess, case: str, framing: str, split: bool) -> None:
    """Whether the whole body comes in the head's packet (the body is complete before the cycle runs)
    or after it, the app runs once. It ran twice when the body came first, and the second run saw an
    empty body: a Django login POST then failed its CSRF check at random."""
    body = b"z" * (40 * 1024 if framing == "spooled" else 500)
    if framing == "chunked":
        head = get(f"/upload-info?{case}", "Transfer-Encoding: chunked", method="POST")
        payload = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    else:
        head = get(f"/upload-info?{case}", f"Content-Length: {len(body)}", method="POST")
        payload = body
    with Conn(srv.port) as c:
        if split:
            c.send(head)
            assert fast_get(srv) == b"fast"  # the head is surely dispatched before the body is sent
            c.send(payload)
        else:
            c.send(head + payload)
        info = json.loads(c.read_response().body)
        assert info["size"] == len(body)
        # one pool thread: this request runs after any second run of the upload would have
        assert c.request(get(f"/upload-calls?{case}")).body == b"1"


@pytest.mark.parametrize("chunked", [False, True])
def test_limit_request_body_before_spooling(srv: ServerProcess, chunked: bool) -> None:
    big = b"y" * (250 * 1024)
    with Conn(srv.port) as c:
        if chunked:
            data = get("/upload-info", "Transfer-Encoding: chunked", method="POST") + b"%x\r\n%s\r\n0\r\n\r\n" % (
                len(big), big)
        else:
            data = get("/upload-info", method="POST", body=big)
        c.send(data)
        assert c.read_response().status == 413
    assert fast_get(srv) == b"fast"


def test_a_slow_upload_over_http2(srv: ServerProcess) -> None:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"), (":path", "/upload-info"),
                          ("content-length", str(len(BODY)))])
    for i in range(0, 20 * 1024, 10 * 1024):  # 20 KiB now (within the default windows), the rest later
        conn.send_data(1, BODY[i:i + 10 * 1024])
    sock.sendall(conn.data_to_send())
    try:
        assert fast_get(srv) == b"fast"  # the stream's body is incomplete: the thread must be free
        body = b""
        rest = BODY[20 * 1024:]
        done = False
        while not done:
            while rest and conn.local_flow_control_window(1) > 0:
                size = min(len(rest), conn.local_flow_control_window(1), conn.max_outbound_frame_size)
                conn.send_data(1, rest[:size], end_stream=size == len(rest))
                rest = rest[size:]
            sock.sendall(conn.data_to_send())
            data = sock.recv(65536)
            assert data
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded):
                    done = True
            sock.sendall(conn.data_to_send())
        info = json.loads(body)
        assert info["size"] == len(BODY) and info["sha256"] == SHA and info["spooled"] is True
    finally:
        sock.close()


def test_a_slow_reader_of_a_large_response_does_not_hold_the_thread(srv: ServerProcess) -> None:
    """32 MiB (more than the kernel's socket buffers hold) answered to a client that reads nothing: the
    rest of the body waits on the event loop, not in the thread."""
    reader = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
    try:
        reader.sendall(get("/big"))
        assert reader.recv(1024).startswith(b"HTTP/1.1 200")  # the response has started ...
        assert fast_get(srv) == b"fast"                        # ... and the only thread is free
        got = 1024
        while got < 32 * 1024 * 1024:
            chunk = reader.recv(1 << 20)
            assert chunk
            got += len(chunk)
    finally:
        reader.close()


def test_streaming_to_the_app_when_buffering_is_off(tmp_path: Path) -> None:
    with start_server(["--interface", "wsgi", "filter_apps:wsgi", "--no-request-body-buffering"],
                      tmp_path=tmp_path) as server:
        with Conn(server.port) as c:
            info = json.loads(c.request(get("/upload-info", method="POST", body=BODY)).body)
        assert info["size"] == len(BODY) and info["spooled"] is False and info["input"] == "WSGIInput"
