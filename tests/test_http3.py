"""HTTP/3 (QUIC, aioquic): the real server with real HTTP/3 clients (aioquic's, tests/h3_client.py, and
ngtcp2's ``gtlsclient`` when installed); Alt-Svc on HTTP/1.1 and HTTP/2; the same request cycle, static
engine and limits as the other protocols; bad input; graceful shutdown."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import httpx
import pytest
import trustme

from django_granian.protocol.http3 import field_section_size, head_frame_length
from tests.conftest import start_server
from tests.core_client import free_udp_tcp_port, wait_until
from tests.h3_client import H3Client, h3_request

pytest.importorskip("aioquic")

APP = ["--interface", "asgi", "h2_apps:app"]


def run(coro):
    return asyncio.run(coro)


# -- sans-IO ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "expected"), [
    (b"\x01\x05abcde", 5),                      # HEADERS, one-byte length
    (b"\x01\x7f\xff", 16383),                   # two-byte length
    (b"\x01\xc0\x00\x00\x00\x00\x01\x00\x00", 65536),  # eight-byte length
    (b"\x01", None),                             # frame header incomplete
    (b"\x01\x7f", None),
    (b"\x00\x05abcde", None),                    # DATA first: not a header block
    (b"\x21\x00\x01\x05", None),                 # a reserved frame type first: counted, not read
    (b"", None),
])
def test_head_frame_length(data, expected):
    assert head_frame_length(data) == expected


def test_field_section_size():
    assert field_section_size([(b"a", b"bc"), (b":path", b"/")]) == 3 + 32 + 6 + 32


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("h3certs")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    CAS[str(d)] = ca
    return d


CAS: dict[str, trustme.CA] = {}  # the CA of each certs directory (to issue more certificates)


def tls(certs) -> list[str]:
    return ["--ssl-certificate", str(certs / "cert.pem"), "--ssl-keyfile", str(certs / "key.pem")]


def h3_server(args, certs, **kw):
    kw.setdefault("port", free_udp_tcp_port())
    return start_server([*args, "--http3", *tls(certs)], **kw)


def wait_h3(srv) -> None:
    wait_until(srv.logged("(HTTP/3, UDP)"), what="the HTTP/3 listener")


@pytest.fixture(scope="module")
def site(tmp_path_factory, certs):
    root = tmp_path_factory.mktemp("h3site")
    static = root / "static"
    static.mkdir()
    big = os.urandom(3 * 1024 * 1024 + 123)
    (static / "big.bin").write_bytes(big)
    css = b"body { color: red; }\n" * 400
    (static / "app.css").write_bytes(css)
    (static / "app.css.gz").write_bytes(gzip.compress(css))
    path = root / "file.bin"
    path.write_bytes(bytes(range(256)) * 4096)
    args = [*APP, "--static-path-route", "/static", "--static-path-mount", str(static), "--access-log",
            "--limit-request-body", "2000000", "--request-body-timeout", "3", "--http3-max-headers-size", "16384",
            "--http3-max-concurrent-streams", "60", "--compress"]
    with h3_server(args, certs, env={"H2_TEST_FILE": str(path)}, tmp_path=root) as srv:
        wait_h3(srv)
        srv.big = big
        srv.css = css
        srv.ca = str(certs / "ca.pem")
        yield srv


# -- the basics --------------------------------------------------------------------------------------------
def test_get_scope_and_tls_extension(site):
    resp = h3_request(site.port, site.ca, "GET", "/scope?x=1")
    assert resp.status == 200 and resp.header("server") == b"django-granian" and resp.header("date")
    assert resp.header("alt-svc") is None  # already on HTTP/3
    info = json.loads(resp.body)
    assert info["http_version"] == "3" and info["scheme"] == "https" and info["query_string"] == "x=1"
    assert ["host", f"localhost:{site.port}"] in info["headers"]  # :authority presented as host
    assert info["tls"]["tls_version"] == 0x0304 and "BEGIN CERTIFICATE" in info["tls"]["server_cert"]
    assert info["tls"]["cipher_suite"] in (0x1301, 0x1302, 0x1303)
    assert {"http.response.trailers", "http.response.early_hint", "http.response.pathsend"} <= set(info["extensions"])
    assert info["server"] == ["127.0.0.1", site.port]
    wait_until(site.logged('"GET /scope HTTP/3" 200'), what="the access log line of the HTTP/3 request")


def test_alt_svc_on_http1_and_http2(site):
    expected = f'h3=":{site.port}"; ma=86400'
    for http2 in (False, True):
        with httpx.Client(http2=http2, verify=site.ca, timeout=10) as client:
            r = client.get(f"https://localhost:{site.port}/")
            assert r.status_code == 200 and r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            assert r.headers["alt-svc"] == expected
            static = client.get(f"https://localhost:{site.port}/static/app.css")  # server-made responses too
            assert static.headers["alt-svc"] == expected


def test_compression_filter_applies(site):
    """--compress wraps the HTTP/3 stream like any other channel (app/filters.py)."""
    async def go():
        async with H3Client.connect(site.port, site.ca) as client:
            plain = await client.get("/scope")
            zipped = await client.get("/scope", (b"accept-encoding", b"gzip"))
            assert plain.header("content-encoding") is None
            assert zipped.header("content-encoding") == b"gzip" and b"accept-encoding" in zipped.header("vary").lower()
            assert json.loads(gzip.decompress(zipped.body))["http_version"] == "3"

    run(go())


def test_post_body_and_head(site):
    body = os.urandom(1_500_000)
    resp = h3_request(site.port, site.ca, "POST", "/echo", body=body)
    assert resp.status == 200 and resp.header("x-echo-length") == b"1500000" and resp.body == body
    head = h3_request(site.port, site.ca, "HEAD", "/")
    assert head.status == 200 and head.body == b"" and head.header("content-length") == b"13"


def test_large_static_file_range_304_and_precompressed(site):
    async def go():
        async with H3Client.connect(site.port, site.ca) as client:
            full = await client.get("/static/big.bin")
            assert full.status == 200 and full.header("content-length") == b"%d" % len(site.big)
            assert hashlib.sha256(full.body).digest() == hashlib.sha256(site.big).digest()
            etag = full.header("etag")
            part = await client.get("/static/big.bin", (b"range", b"bytes=1000000-1999999"))
            assert part.status == 206 and part.body == site.big[1000000:2000000]
            assert part.header("content-range") == b"bytes 1000000-1999999/%d" % len(site.big)
            tail = await client.get("/static/big.bin", (b"range", b"bytes=-10"))
            assert tail.status == 206 and tail.body == site.big[-10:]
            again = await client.get("/static/big.bin", (b"if-none-match", etag))
            assert again.status == 304 and again.body == b""
            gz = await client.get("/static/app.css", (b"accept-encoding", b"gzip, br"))
            assert gz.status == 200 and gz.header("content-encoding") == b"gzip"
            assert gzip.decompress(gz.body) == site.css
            plain = await client.get("/static/app.css")
            assert plain.body == site.css and plain.header("content-encoding") is None
            sent = await client.get("/pathsend")  # ASGI http.response.pathsend, 1 MiB
            assert sent.status == 200 and sent.body == bytes(range(256)) * 4096

    run(go())


def test_concurrent_streams_on_one_connection(site):
    """50 requests at once on one connection: the app sees them all in flight together."""
    async def go():
        async with H3Client.connect(site.port, site.ca) as client:
            sids = [client.open("POST", f"/counted?c{i}", end=False) for i in range(50)]
            for i, sid in enumerate(sids):
                client.send_data(sid, b"x%d" % i, True)
            resps = [await client.response(sid) for sid in sids]
            assert [r.body for r in resps] == [b"c%d:x%d" % (i, i) for i in range(50)]
            seen = json.loads((await client.get("/__seen")).body)
            assert seen["max"] >= 50  # all 50 were in the app at the same time

    run(go())


def test_trailers_early_hints_and_100_continue(site):
    async def go():
        async with H3Client.connect(site.port, site.ca) as client:
            t = await client.get("/trailers")
            assert t.body == b"body-more" and t.trailers == [(b"x-checksum", b"abc123")]
            e = await client.get("/early")
            assert e.informational[0][0] == 103 and (b"link", b"</style.css>; rel=preload; as=style") in \
                e.informational[0][1]
            sid = client.open("POST", "/echo", [(b"expect", b"100-continue"), (b"content-length", b"4")])
            while not client.proto.responses[sid].informational:
                await asyncio.sleep(0.01)
            assert client.proto.responses[sid].informational[0][0] == 100
            client.send_data(sid, b"ping", True)
            assert (await client.response(sid)).body == b"ping"

    run(go())


def test_server_answered_413_and_408(site):
    async def go():
        async with H3Client.connect(site.port, site.ca) as client:
            sid = client.open("POST", "/echo", [(b"content-length", b"3000000")])  # over the limit: refused at once
            client.send_data(sid, b"x" * 10)
            declared = await client.response(sid)
            assert declared.status == 413
            # no content-length: the body runs over --limit-request-body while streaming
            sid = client.open("POST", "/echo")
            for _ in range(25):
                client.send_data(sid, b"y" * 100_000)
                await asyncio.sleep(0)
            over = await client.response(sid)
            assert over.status == 413 and over.body == b"Request body too large\n"
            # a body that stops arriving: 408 after --request-body-timeout (3 s)
            sid = client.open("POST", "/echo", [(b"content-length", b"10")])
            client.send_data(sid, b"12345")
            stalled = await client.response(sid, timeout=15)
            assert stalled.status == 408
            assert (await client.get("/")).body == b"Hello, world!"  # the connection is still good

    run(go())


def test_websocket_over_http3(site):
    """RFC 9220: extended CONNECT with :protocol websocket; frames in DATA."""
    async def go():
        async with H3Client.connect(site.port, site.ca) as client:
            sid = client.open("CONNECT", "/ws", [(b"sec-websocket-version", b"13")], protocol=b"websocket")
            resp = client.proto.responses[sid]
            await wait_for(lambda: resp.status)
            assert resp.status == 200
            mask = b"\x01\x02\x03\x04"
            client.send_data(sid, b"\x81\x85" + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"hello")))
            await wait_for(lambda: resp.body)
            assert resp.body == b"\x81\x05hello"
            client.send_data(sid, b"\x88\x82" + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x03\xe8")))
            await client.response(sid)
            assert resp.body.endswith(b"\x88\x02\x03\xe8")  # the close frame echoed, then the stream ended

    run(go())


async def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


# -- bad input -------------------------------------------------------------------------------------------
def _udp(port: int, data: bytes, wait: float = 0.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait or 0.2)
        sock.sendto(data, ("127.0.0.1", port))
        if not wait:
            return None
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


def test_garbage_datagrams_and_version_negotiation(site):
    for data in (b"", b"\x00", b"GET / HTTP/1.1\r\n\r\n", os.urandom(1200), b"\x40" + os.urandom(30),
                 b"\xc0\x00\x00\x00\x01\x08" + os.urandom(8) + b"\x08", os.urandom(65000)):
        _udp(site.port, data)
    # an Initial of an unknown version (padded to 1200 bytes): Version Negotiation lists v1 and v2
    dcid, scid = os.urandom(8), os.urandom(8)
    initial = b"\xc0" + b"\x1a\x2a\x3a\x4a" + b"\x08" + dcid + b"\x08" + scid
    reply = _udp(site.port, initial + b"\x00" * (1200 - len(initial)), wait=5)
    assert reply is not None and reply[0] & 0x80 and reply[1:5] == b"\x00\x00\x00\x00"  # version 0: VN
    assert reply[6:14] == scid and reply[15:23] == dcid  # the client's connection ids, swapped
    versions = {reply[i:i + 4] for i in range(23, len(reply), 4)}
    assert {b"\x00\x00\x00\x01", b"\x6b\x33\x43\xcf"} <= versions
    # the same under 1200 bytes gets nothing (RFC 9000 section 5.2.2: no amplification)
    assert _udp(site.port, initial + b"\x00" * 100, wait=0.5) is None
    assert h3_request(site.port, site.ca, "GET", "/").body == b"Hello, world!"  # still serving


def test_overlong_header_block_gets_431_and_others_are_unaffected(site):
    async def go():
        async with H3Client.connect(site.port, site.ca) as client, H3Client.connect(site.port, site.ca) as other:
            big = await client.request("GET", "/", [(b"x-big", b"a" * 20000)])
            assert big.status == 431
            many = await client.request("GET", "/", [(b"x-%d" % i, b"v" * 60) for i in range(300)])
            assert many.status == 431  # compressed below the limit, decoded above it
            assert (await client.get("/")).body == b"Hello, world!"  # the connection survives
            # a HEADERS frame that declares 1 MB: refused from its first bytes, never buffered
            sid = client.proto._quic.get_next_available_stream_id()
            client.proto.responses[sid] = type(big)()
            client.send_raw(sid, b"\x01\x80\x10\x00\x00" + b"\x00" * 1000)
            assert (await client.response(sid)).status == 431
            assert (await other.get("/")).body == b"Hello, world!"

    run(go())


def test_stream_reset_mid_body(site):
    async def go():
        async with H3Client.connect(site.port, site.ca) as client, H3Client.connect(site.port, site.ca) as other:
            before = len(json.loads((await other.get("/__seen")).body)["body"])
            sid = client.open("POST", "/watch-body", [(b"content-length", b"100000")])
            client.send_data(sid, b"z" * 30000)
            await asyncio.sleep(0.2)
            client.reset(sid)
            async def disconnect_seen():
                seen = json.loads((await other.get("/__seen")).body)["body"]
                return seen[before:] == ["disconnect"]
            for _ in range(200):
                if await disconnect_seen():
                    break
                await asyncio.sleep(0.05)
            assert await disconnect_seen()
            assert (await client.get("/")).body == b"Hello, world!"  # same connection, next stream

    run(go())


# -- other interfaces, other clients ----------------------------------------------------------------------------
def test_wsgi_over_http3(certs):
    with h3_server(["--interface", "wsgi", "h2_apps:wsgi"], certs) as srv:
        wait_h3(srv)
        resp = h3_request(srv.port, str(certs / "ca.pem"), "POST", "/", body=b"payload")
        assert resp.body == b"wsgi:HTTP/3:https:payload"


def test_ngtcp2_client(site):
    """ngtcp2's example client (Debian ngtcp2-client: ngtcp2 + nghttp3, an independent HTTP/3 stack)."""
    if shutil.which("gtlsclient") is None:
        pytest.skip("gtlsclient not installed (apt-get install ngtcp2-client)")
    out = subprocess.run(["gtlsclient", "--exit-on-all-streams-close", "-n", "20", "127.0.0.1", str(site.port),
                          f"https://127.0.0.1:{site.port}/", f"https://127.0.0.1:{site.port}/static/app.css"],
                         capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    assert text.count("[:status: 200]") == 20, text[-3000:]
    assert "body 13 bytes" in text and text.count("headers ended") == 20


def test_curl_http3(site):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    version = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout
    if "HTTP3" not in version:
        pytest.skip("this curl has no HTTP/3 (Debian 12's curl 7.88 is built without it)")
    out = subprocess.run(["curl", "-sS", "--http3-only", "--cacert", site.ca, f"https://localhost:{site.port}/"],
                         capture_output=True, timeout=30)
    assert out.stdout == b"Hello, world!"


# -- configuration and lifecycle ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("extra", "message"), [
    ([], "--http3 needs TLS"),
    (["--ssl-client-verify"], "--http3 cannot be combined with --ssl-client-verify"),
    (["--http3-port", "80", "--http-redirect-port", "80"], "is the same as --http-redirect-port"),
])
def test_config_errors(certs, extra, message, tmp_path):
    import sys

    from tests.conftest import ROOT, free_port

    args = [*APP, "--http3", *extra, "--port", str(free_port())]
    if extra:
        args += tls(certs)
        if "--ssl-client-verify" in extra:
            args += ["--ssl-ca", str(certs / "ca.pem")]
    out = subprocess.run([sys.executable, "-m", "django_granian", *args], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'apps'}"},
                         cwd=str(ROOT))
    assert out.returncode == 2 and message in out.stderr + out.stdout and "Traceback" not in out.stderr


def test_graceful_shutdown_sends_goaway_and_drains(certs):
    with h3_server(APP, certs) as srv:
        wait_h3(srv)
        ca = str(certs / "ca.pem")

        async def go():
            async with H3Client.connect(srv.port, ca) as client:
                assert (await client.get("/")).status == 200
                sid = client.open("GET", "/slow?1.5", end=True)
                wait_until(srv.logged("slow started"))
                os.kill(srv.proc.pid, signal.SIGTERM)
                await wait_for(lambda: client.proto.goaway is not None)
                assert client.proto.goaway == sid + 4  # the streams opened so far are served
                resp = await client.response(sid)
                assert resp.status == 200 and resp.body == b"slow done"
                term = await client.wait_closed()
                assert term is not None and term.error_code == 0x100  # H3_NO_ERROR

        run(go())
        assert srv.proc.wait(20) == 0


def test_certificate_reload_reaches_http3(certs, tmp_path):
    for name in ("cert.pem", "key.pem"):
        shutil.copy(certs / name, tmp_path / name)
    args = [*APP, "--ssl-certificate", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem")]
    with start_server([*args, "--http3"], port=free_udp_tcp_port(), tmp_path=tmp_path) as srv:
        wait_h3(srv)
        ca = str(certs / "ca.pem")

        async def serial() -> int:
            async with H3Client.connect(srv.port, ca) as client:
                assert (await client.get("/")).status == 200
                return client.proto._quic.tls._peer_certificate.serial_number

        first = run(serial())
        new = CAS[str(certs)].issue_cert("localhost", "127.0.0.1")
        new.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
        new.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
        wait_until(srv.logged("Loaded the TLS certificate"), what="the reload")
        second = run(serial())
        assert second != first
        from cryptography import x509

        assert second == x509.load_pem_x509_certificate(new.cert_chain_pems[0].bytes()).serial_number


def test_udp_listener_asks_for_big_socket_buffers() -> None:
    """A QUIC peer sends bursts; the default 212 KiB receive buffer dropped datagrams under load
    (docs/benchmarks/http3.md). The kernel caps the size at net.core.rmem_max / wmem_max."""
    from pathlib import Path

    from django_granian.server.quic import UDP_BUFFER, bind_udp

    sock = bind_udp("127.0.0.1", 0)
    try:
        for option, cap in ((socket.SO_RCVBUF, "rmem_max"), (socket.SO_SNDBUF, "wmem_max")):
            limit = int(Path(f"/proc/sys/net/core/{cap}").read_text())
            # Linux reports twice the size it granted (bookkeeping overhead)
            assert sock.getsockopt(socket.SOL_SOCKET, option) >= 2 * min(UDP_BUFFER, limit)
    finally:
        sock.close()
