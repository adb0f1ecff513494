"""Response compression on the real server: the same results under ASGI, WSGI and RSGI, over
HTTP/1.1 (raw sockets) and HTTP/2 (httpx, prior knowledge); bodies decoded by the codec libraries."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

import brotli
import httpx
import pytest
import zstandard

from .apps.filter_apps import STREAM, page
from .conftest import ServerProcess, start_server
from .core_client import Conn, get

INTERFACES = ["asgi", "wsgi", "rsgi"]
FILE_BODY = b"".join(b"line %d of a text file\n" % i for i in range(4000))


def decode(coding: str | None, data: bytes) -> bytes:
    if coding is None:
        return data
    if coding == "gzip":
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    if coding == "br":
        return brotli.decompress(data)
    assert coding == "zstd"
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def streaming_decoder(coding: str) -> Callable[[bytes], bytes]:
    if coding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    if coding == "br":
        return brotli.Decompressor().process
    return zstandard.ZstdDecompressor().decompressobj().decompress


@pytest.fixture(scope="module", params=INTERFACES)
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("compress")
    (tmp / "file.txt").write_bytes(FILE_BODY)
    iface = request.param
    with start_server(["--interface", iface, f"filter_apps:{iface}", "--compress"], tmp_path=tmp,
                      env={"FILTER_FILE": str(tmp / "file.txt")}) as server:
        yield server


class Got:
    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> bytes | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[bytes]:
        return [v for n, v in self.headers if n == name.encode()]


def fetch(srv: ServerProcess, proto: str, path: str, accept: str | None, method: str = "GET") -> Got:
    """The raw (still encoded) response."""
    if proto == "h1":
        with Conn(srv.port) as c:
            extra = [f"Accept-Encoding: {accept}"] if accept is not None else []
            r = c.request(get(path, *extra, method=method), head=method == "HEAD")
            return Got(r.status, r.headers, r.body)
    headers = {"accept-encoding": accept if accept is not None else "identity"}
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=15) as client:
        with client.stream(method, path, headers=headers) as resp:
            assert resp.http_version == "HTTP/2"
            body = b"".join(resp.iter_raw())
            return Got(resp.status_code, [(k, v) for k, v in resp.headers.raw], body)


PROTOS = ["h1", "h2"]


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_whole_bodies(srv: ServerProcess, proto: str, coding: str) -> None:
    r = fetch(srv, proto, "/page", coding)
    assert r.status == 200 and r.header("content-encoding") == coding.encode()
    assert r.header("vary") == b"Accept-Encoding"
    assert r.header("etag") == b'W/"v1"'  # weakened: If-None-Match still matches the app's tag
    assert int(r.header("content-length") or -1) == len(r.body) < 20000 / 10
    assert decode(coding, r.body) == page(20000)
    j = fetch(srv, proto, "/json", coding)
    assert j.header("content-encoding") == coding.encode() and decode(coding, j.body).startswith(b'{"items"')


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize(("accept", "expected"), [
    ("gzip, deflate, br, zstd", "zstd"),
    ("gzip;q=0.5, br", "br"),
    ("gzip;q=abc, br;q=0, deflate, zstd;q=2", None),
    ("identity", None),
    ("*;q=0", None),
    ("x-gzip", "gzip"),
])
def test_negotiation(srv: ServerProcess, proto: str, accept: str, expected: str | None) -> None:
    r = fetch(srv, proto, "/page", accept)
    assert r.status == 200
    assert r.header("content-encoding") == (expected.encode() if expected else None)
    assert r.header("vary") == b"Accept-Encoding"
    assert decode(expected, r.body) == page(20000)


def test_no_accept_encoding_is_identity_with_vary(srv: ServerProcess) -> None:
    r = fetch(srv, "h1", "/page", None)
    assert r.header("content-encoding") is None and r.header("vary") == b"Accept-Encoding"
    assert r.header("etag") == b'"v1"' and r.body == page(20000)


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize(("path", "vary"), [
    ("/png", False),            # not a compressible type
    ("/notransform", False),    # Cache-Control: no-transform
    ("/cookie", True),          # sets a cookie: BREACH, not compressed by default
    ("/small", True),           # below --compress-min-size
    ("/status?code=206&n=5000", False),
])
def test_left_alone(srv: ServerProcess, proto: str, path: str, vary: bool) -> None:
    r = fetch(srv, proto, path, "gzip, br, zstd")
    assert r.header("content-encoding") is None
    assert (r.header("vary") == b"Accept-Encoding") is vary
    assert len(r.body) == int(r.header("content-length") or -1)


@pytest.mark.parametrize("proto", PROTOS)
def test_app_encoded_body_untouched(srv: ServerProcess, proto: str) -> None:
    r = fetch(srv, proto, "/encoded", "gzip, br, zstd")
    assert r.header("content-encoding") == b"gzip" and decode("gzip", r.body) == page(20000)
    assert r.header("vary") is None  # the app's own encoding, the app's own headers


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("code", [304, 204])
def test_bodyless_statuses(srv: ServerProcess, proto: str, code: int) -> None:
    r = fetch(srv, proto, f"/status?code={code}", "gzip")
    assert r.status == code and r.header("content-encoding") is None and r.body == b""


@pytest.mark.parametrize("proto", PROTOS)
def test_head_is_not_compressed(srv: ServerProcess, proto: str) -> None:
    r = fetch(srv, proto, "/page", "gzip", method="HEAD")
    assert r.status == 200 and r.header("content-encoding") is None and r.body == b""
    assert r.header("vary") == b"Accept-Encoding"


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_streamed_and_file_bodies(srv: ServerProcess, proto: str, coding: str) -> None:
    r = fetch(srv, proto, "/stream", coding)
    assert r.header("content-encoding") == coding.encode() and r.header("content-length") is None
    assert decode(coding, r.body) == b"".join(STREAM)
    f = fetch(srv, proto, "/file", coding)
    assert f.header("content-encoding") == coding.encode() and decode(coding, f.body) == FILE_BODY


@pytest.mark.parametrize("proto", PROTOS)
def test_uncompressed_file_keeps_its_length(srv: ServerProcess, proto: str) -> None:
    r = fetch(srv, proto, "/file", "identity")
    assert r.header("content-encoding") is None and r.body == FILE_BODY
    assert r.header("content-length") == str(len(FILE_BODY)).encode()


def _release(srv: ServerProcess) -> None:
    with Conn(srv.port) as c:
        assert c.request(get("/release")).body == b"released"


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_sse_events_arrive_one_by_one_http1(srv: ServerProcess, coding: str) -> None:
    """The first event is decodable before the app has produced the second (a flush per chunk)."""
    with Conn(srv.port, timeout=15) as c:
        c.send(get("/events", f"Accept-Encoding: {coding}"))
        while b"\r\n\r\n" not in c.buf:
            assert c._more()
        head, _, c.buf = c.buf.partition(b"\r\n\r\n")
        assert b"content-encoding: " + coding.encode() in head.lower()
        assert b"transfer-encoding: chunked" in head.lower()
        dec = streaming_decoder(coding)
        text = b""
        while b"data: 1\n\n" not in text:
            size = int(c._read_line(), 16)
            assert size, "the stream ended before the first event"
            text += dec(c._read_exact(size))
            assert c._read_exact(2) == b"\r\n"
        assert text == b"data: 1\n\n"
        _release(srv)
        while True:
            size = int(c._read_line(), 16)
            if size == 0:
                break
            text += dec(c._read_exact(size))
            assert c._read_exact(2) == b"\r\n"
        assert text == b"data: 1\n\ndata: 2\n\n"


@pytest.mark.parametrize("coding", ["zstd", "gzip"])
def test_sse_events_arrive_one_by_one_http2(srv: ServerProcess, coding: str) -> None:
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=15) as client:
        with client.stream("GET", "/events", headers={"accept-encoding": coding}) as resp:
            assert resp.headers["content-encoding"] == coding
            dec = streaming_decoder(coding)
            chunks = resp.iter_raw()
            text = b""
            while b"data: 1\n\n" not in text:
                text += dec(next(chunks))
            assert text == b"data: 1\n\n"
            threading.Thread(target=_release, args=(srv,)).start()
            for raw in chunks:
                text += dec(raw)
            assert text == b"data: 1\n\ndata: 2\n\n"


def test_off_by_default(tmp_path: Path) -> None:
    with start_server(["--interface", "asgi", "filter_apps:asgi"], tmp_path=tmp_path) as server:
        r: Any = fetch(server, "h1", "/page", "gzip, br, zstd")
        assert r.header("content-encoding") is None and r.header("vary") is None and r.body == page(20000)


def test_configured_codings_and_levels(tmp_path: Path) -> None:
    with start_server(["--interface", "asgi", "filter_apps:asgi", "--compress", "--compress-encodings", "gzip",
                       "--compress-gzip-level", "1", "--compress-min-size", "30000"], tmp_path=tmp_path) as server:
        assert fetch(server, "h1", "/page", "zstd, br").header("content-encoding") is None
        assert fetch(server, "h1", "/page", "gzip").header("content-encoding") is None  # 20000 < 30000
        big = fetch(server, "h1", "/page?n=40000", "zstd, gzip")
        assert big.header("content-encoding") == b"gzip" and decode("gzip", big.body) == page(40000)
        assert b"compression: gzip" in server.output().encode().lower()
