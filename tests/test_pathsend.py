"""ASGI ``http.response.pathsend`` (server/sendfile.py): zero-copy on plain HTTP/1.1, chunked under
TLS and HTTP/2, bounded memory for large files, keep-alive and pipelining after a file response."""

from __future__ import annotations

import os
import re
import socket
import ssl
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import psutil
import pytest

from .conftest import http_request, start_server
from .core_client import wait_until
from .test_static import _stream_measuring, make_big


def _files(folder: Path) -> dict[str, bytes]:
    files = {"small.txt": b"hello pathsend\n", "empty.txt": b"", "mid.bin": os.urandom(700 * 1024)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("pathsend")
    files = _files(folder)
    args = ["--interface", "asgi", "static_apps:pathsend", "--access-log"]
    with start_server(args, env={"PATHSEND_DIR": str(folder)}, tmp_path=folder) as proc:
        srv: Any = proc
        srv.folder = folder
        srv.files = files
        with httpx.Client(base_url=srv.url, timeout=60) as client:
            srv.client = client
            yield srv


def test_scope_advertises_pathsend(app_server: Any) -> None:
    assert "http.response.pathsend" in app_server.client.get("/ext").text.split(",")


def test_file_bodies_and_headers(app_server: Any) -> None:
    c = app_server.client
    for name, data in app_server.files.items():
        r = c.get(f"/file/{name}")
        assert r.status_code == 200 and r.content == data, name
        assert r.headers["content-length"] == str(len(data))
        assert r.headers["x-app"] == "pathsend" and r.headers["content-type"] == "application/octet-stream"
    r = c.get("/file/mid.bin?bad-length")  # the app's wrong content-length is replaced
    assert r.headers["content-length"] == str(len(app_server.files["mid.bin"]))
    assert r.content == app_server.files["mid.bin"]
    r = c.head("/file/mid.bin")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == str(700 * 1024)


def test_missing_file_is_a_500_and_the_connection_survives(app_server: Any) -> None:
    c = app_server.client
    assert c.get("/file/nope.bin").status_code == 500
    assert c.get("/file/small.txt").content == b"hello pathsend\n"
    assert "nope.bin" in app_server.output()


def test_pipelined_requests_after_file_responses(app_server: Any) -> None:
    files = app_server.files
    req = b"GET /file/%s HTTP/1.1\r\nHost: x\r\n\r\n"
    data = (req % b"mid.bin" + req % b"small.txt" + req % b"empty.txt" + req % b"mid.bin"
            + b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    out = http_request(app_server.port, data, timeout=30)
    bodies = []
    while out:
        head, _, rest = out.partition(b"\r\n\r\n")
        match = re.search(rb"content-length: (\d+)", head)
        assert match, head
        length = int(match.group(1))
        bodies.append(rest[:length])
        out = rest[length:]
    assert bodies == [files["mid.bin"], files["small.txt"], b"", files["mid.bin"], b"app:GET /other"]


def test_large_file_with_bounded_memory(app_server: Any) -> None:
    big = app_server.folder / "big.bin"
    md5 = make_big(big)
    try:
        app_server.client.get("/file/mid.bin")
        got, baseline, peak = _stream_measuring(app_server.client, "/file/big.bin", app_server.proc.pid)
        assert got == md5
        assert peak - baseline < 20 * 1024 * 1024, f"server RSS grew by {(peak - baseline) >> 20} MiB"
    finally:
        big.unlink()


def unsent_bytes(server_port: int, client_port: int) -> int:
    """What the server's end of a loopback connection has queued and the client not yet taken (the
    kernel's tx_queue in /proc/net/tcp)."""
    want = (f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}")
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == want:
            return int(fields[4].split(":")[0], 16)
    return 0


def stalled(server_port: int, client_port: int) -> Callable[[], bool]:
    """A check for wait_until: the server's send queue is not empty and stopped moving (it waits for
    the socket to become writable: EAGAIN)."""
    last = [-1]

    def check() -> bool:
        now = unsent_bytes(server_port, client_port)
        moved, last[0] = now != last[0], now
        return now > 0 and not moved

    return check


def test_client_gone_mid_file(app_server: Any) -> None:
    """A client that stops reading and disconnects: no stuck task, no leaked descriptor."""
    big = app_server.folder / "gone.bin"
    make_big(big, 20 * 1024 * 1024)
    server = psutil.Process(app_server.proc.pid)
    app_server.client.get("/file/small.txt")
    fds_before = server.num_fds()
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", app_server.port), timeout=10) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(b"GET /file/gone.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
                wait_until(stalled(app_server.port, sock.getsockname()[1]), interval=0.05, what="a full socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        assert app_server.client.get("/file/small.txt").content == b"hello pathsend\n"
        wait_until(lambda: server.num_fds() <= fds_before, what="descriptors released")
    finally:
        big.unlink()


def test_tls_and_http2_use_the_chunked_path(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    files = _files(tmp_path)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(cafile=str(ca_file))
    md5 = make_big(tmp_path / "big.bin")
    args = ["--interface", "asgi", "static_apps:pathsend", "--ssl-certificate", str(chain), "--ssl-keyfile", str(key)]
    with start_server(args, env={"PATHSEND_DIR": str(tmp_path)}, tmp_path=tmp_path) as srv:
        for http2 in (False, True):
            with httpx.Client(base_url=f"https://127.0.0.1:{srv.port}", verify=context, http2=http2, timeout=120) as c:
                r = c.get("/file/mid.bin")
                assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
                assert r.content == files["mid.bin"] and r.headers["content-length"] == str(len(files["mid.bin"]))
                assert c.get("/file/empty.txt").content == b""
                got, baseline, peak = _stream_measuring(c, "/file/big.bin", srv.proc.pid)
                assert got == md5
                assert peak - baseline < 25 * 1024 * 1024, f"RSS grew by {(peak - baseline) >> 20} MiB"
