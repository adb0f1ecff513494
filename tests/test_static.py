"""Static files served by the server (django_granian/static_files): tables for the pure rules, the engine
in-process with a recording channel, and the real server over HTTP/1.1, TLS and HTTP/2 with httpx,
curl and raw sockets."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any, Iterator

import httpx
import psutil
import pytest

from django_granian.protocol.http11 import RequestHead
from django_granian.static_files import headers as rules
from django_granian.static_files.entry import content_type, hashed_name_test
from django_granian.static_files.files import StaticFiles, _choose
from django_granian.static_files.paths import split_request_path, url_for

from .conftest import free_port, http_request, start_server
from .core_client import wait_until

CSS = ("body { color: #123456; }\n" * 1024).encode()  # 24 KiB of text
FAKE_BR = b"BROTLI" * 10  # served as is (the server never decodes it); smaller than the .gz
BIG_SIZE = 50 * 1024 * 1024
# httpx asks for br and zstd once brotli and zstandard are installed (the test extra): its older default
# keeps the fake .br sibling out of the requests that do not ask for it themselves
HTTPX_ACCEPT = {"accept-encoding": "gzip, deflate"}


def tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def make_big(path: Path, size: int = BIG_SIZE) -> str:
    """A ``size``-byte file of repeated random blocks; returns its md5."""
    block = os.urandom(1024 * 1024)
    digest = hashlib.md5()
    with open(path, "wb") as fh:
        left = size
        while left:
            piece = block[:min(left, len(block))]
            fh.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def build_tree(root: Path) -> Path:
    static = root / "static"
    (static / "sub").mkdir(parents=True)
    (static / "nosub").mkdir()
    (root / "outside").mkdir()
    (root / "media").mkdir()
    (root / "secret.txt").write_bytes(b"SECRET-CONTENT\n")
    (root / "outside" / "secret2.txt").write_bytes(b"SECRET-CONTENT-2\n")
    (static / "app.css").write_bytes(CSS)
    (static / "app.css.gz").write_bytes(gzip.compress(CSS, 9))
    (static / "app.css.br").write_bytes(FAKE_BR)
    (static / "app.3f2a1b9c8d7e.css").write_bytes(b"h1{}\n")
    (static / "data.json").write_bytes(b'{"a": 1}')
    (static / "mid.bin").write_bytes(os.urandom(400 * 1024))  # above the memory cache limit: streamed
    (static / "a b.txt").write_bytes(b"space\n")
    (static / "é.txt").write_bytes(b"accent\n")
    (static / "empty.txt").write_bytes(b"")
    (static / "sub" / "index.html").write_bytes(b"<p>index</p>\n")
    (static / "nosub" / "x.txt").write_bytes(b"x\n")
    (root / "media" / "m.txt").write_bytes(b"media\n")
    os.symlink(root / "secret.txt", static / "escape.txt")
    os.symlink(root / "outside", static / "escdir")
    os.symlink(static / "app.css", static / "inlink.css")
    return static


# -- pure rules ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("raw", "expected"), [
    (b"", ([], False)),
    (b"/", ([], True)),
    (b"/app.css", (["app.css"], False)),
    (b"/sub/", (["sub"], True)),
    (b"/a%20b.txt", (["a b.txt"], False)),
    (b"/%C3%A9.txt", (["é.txt"], False)),
    (b"/%252e%252e/x", (["%2e%2e", "x"], False)),  # decoded once: a literal name, not a parent
    (b"/../x", None),
    (b"/%2e%2e/x", None),
    (b"/%2E%2E/x", None),
    (b"/.%2e/x", None),
    (b"/..%2fx", None),
    (b"/a/./b", None),
    (b"/a/%2e/b", None),
    (b"//etc/passwd", None),
    (b"/%2fetc%2fpasswd", None),
    (b"/..%5cx", None),
    (b"/a\\b", None),
    (b"/x%00.txt", None),
    (b"/x\x00", None),
    (b"/%c0%ae%c0%ae/x", None),  # overlong UTF-8 dots: not UTF-8 at all
    (b"/%ff", None),
    (b"x", None),
])
def test_split_request_path(raw: bytes, expected: Any) -> None:
    assert split_request_path(raw) == expected


def test_url_for_is_canonical() -> None:
    assert url_for(b"/static", ["a b.txt"]) == b"/static/a%20b.txt"
    assert url_for(b"/static", ["é.txt"]) == b"/static/%C3%A9.txt"
    assert url_for(b"/static", ["x~y:@!$&'()*+,;=.css"]) == b"/static/x~y:@!$&'()*+,;=.css"
    assert url_for(b"", []) == b"/"


@pytest.mark.parametrize(("header", "size", "expected"), [
    (b"bytes=0-9", 100, (0, 10)),
    (b"bytes=10-", 100, (10, 100)),
    (b"bytes=-5", 100, (95, 100)),
    (b"bytes=-500", 100, (0, 100)),
    (b"bytes=90-200", 100, (90, 100)),
    (b"bytes=99-99", 100, (99, 100)),
    (b" bytes = 1-2 ", 100, None),  # "bytes =" is not the unit
    (b"Bytes=1-2", 100, (1, 3)),
    (b"bytes=100-", 100, rules.UNSATISFIABLE),
    (b"bytes=150-160", 100, rules.UNSATISFIABLE),
    (b"bytes=-0", 100, rules.UNSATISFIABLE),
    (b"bytes=0-", 0, rules.UNSATISFIABLE),
    (b"bytes=0-1,5-6", 100, None),  # several ranges: ignored (200)
    (b"bytes=5-1", 100, None),
    (b"bytes=a-b", 100, None),
    (b"bytes=-", 100, None),
    (b"bytes=1", 100, None),
    (b"items=0-1", 100, None),
    (b"", 100, None),
])
def test_parse_range(header: bytes, size: int, expected: Any) -> None:
    assert rules.parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "expected"), [
    (b"gzip, deflate, br", {"gzip": 1.0, "deflate": 1.0, "br": 1.0}),
    (b"br;q=0.5, gzip;q=1.0", {"br": 0.5, "gzip": 1.0}),
    (b"GZIP ; Q=0.3", {"gzip": 0.3}),
    (b"gzip;q=nope, br;q=2", {"gzip": 0.0, "br": 0.0}),
    (b"*;q=0.1", {"*": 0.1}),
    (b"", {}),
])
def test_accept_encoding(header: bytes, expected: dict) -> None:
    assert rules.accept_encoding(header) == expected


@pytest.mark.parametrize(("header", "coding", "q"), [
    (b"gzip", "gzip", 1.0),
    (b"x-gzip", "gzip", 1.0),
    (b"gzip", "br", 0.0),
    (b"*", "br", 1.0),
    (b"*;q=0.2, br;q=0", "br", 0.0),
    (b"*;q=0.2, br;q=0", "gzip", 0.2),
])
def test_coding_quality(header: bytes, coding: str, q: float) -> None:
    assert rules.coding_quality(rules.accept_encoding(header), coding) == q


@pytest.mark.parametrize(("header", "etag", "expected"), [
    (b'"abc"', b'"abc"', True),
    (b'W/"abc"', b'"abc"', True),
    (b'"x", "abc"', b'"abc"', True),
    (b"*", b'"abc"', True),
    (b'"abd"', b'"abc"', False),
    (b"abc", b'"abc"', False),
    (b"", b'"abc"', False),
])
def test_etag_matches(header: bytes, etag: bytes, expected: bool) -> None:
    assert rules.etag_matches(header, etag) is expected


def test_http_date() -> None:
    assert rules.http_date(b"Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert rules.http_date(b"yesterday") is None
    assert rules.http_date(b"") is None


@pytest.mark.parametrize(("url", "expected"), [
    ("/static/app.3f2a1b9c8d7e.css", True),
    ("/static/admin/js/core.0123456789ab.js", True),
    ("/static/app.3f2a1b9c8d7e.css.gz", True),
    ("/static/app.css", False),
    ("/static/app.3f2a1b9c.css", False),  # 9 digits: not Django's manifest hash
    ("/static/app.3F2A1B9C8D7E.css", False),
    ("/static/3f2a1b9c8d7e.css", False),
])
def test_hashed_name_test(url: str, expected: bool) -> None:
    assert hashed_name_test("", url) is expected


def test_content_type() -> None:
    assert content_type("x/app.css") == b"text/css; charset=utf-8"
    assert content_type("x/app.js") == b"text/javascript; charset=utf-8"
    assert content_type("x/a.png") == b"image/png"
    assert content_type("x/a.unknownext") == b"application/octet-stream"


# -- the engine in-process -------------------------------------------------------------------------
class Recorder:
    """A channel that records what the engine answers."""

    def __init__(self) -> None:
        self.responses: list[tuple[int, dict, bytes]] = []
        self.cycle: Any = None

    def respond(self, status: int, headers: Any, body: bytes) -> None:
        self.responses.append((status, {n.decode(): v.decode() for n, v in headers}, body))


def head_for(path: bytes, method: str = "GET", headers: list | None = None) -> RequestHead:
    raw_path, _, query = path.partition(b"?")
    return RequestHead(method, path, raw_path, query, "1.1", headers or [], 0, False, True, False, None, b"x")


def serve_once(engine: StaticFiles, path: bytes, **kw: Any) -> tuple[int, dict, bytes] | None:
    channel = Recorder()
    if not engine.serve(channel, head_for(path, **kw)):
        return None
    return channel.responses[-1]


def test_engine_options(tmp_path: Path) -> None:
    static = build_tree(tmp_path)
    plain = StaticFiles([("/s", str(static))], expires=0, index_file=None)
    status, headers, body = serve_once(plain, b"/s/app.css")  # type: ignore[misc]
    assert status == 200 and body == CSS and "cache-control" not in headers
    assert serve_once(plain, b"/s/sub/")[0] == 404  # type: ignore[index]
    assert serve_once(plain, b"/s/escape.txt")[0] == 404  # type: ignore[index]
    assert serve_once(plain, b"/elsewhere") is None
    # follow_symlinks: links leaving the mount are served, traversal is still refused
    follow = StaticFiles([("/s", str(static))], follow_symlinks=True)
    assert serve_once(follow, b"/s/escape.txt")[2] == b"SECRET-CONTENT\n"  # type: ignore[index]
    assert serve_once(follow, b"/s/escdir/secret2.txt")[2] == b"SECRET-CONTENT-2\n"  # type: ignore[index]
    assert serve_once(follow, b"/s/../secret.txt")[0] == 404  # type: ignore[index]
    # fallthrough: misses go to the app (Django's finders in development)
    through = StaticFiles([("/s", str(static))], fallthrough=True)
    assert serve_once(through, b"/s/missing.css") is None
    assert serve_once(through, b"/s/app.css")[0] == 200  # type: ignore[index]
    # a custom immutable test (whitenoise's WHITENOISE_IMMUTABLE_FILE_TEST signature)
    custom = StaticFiles([("/s", str(static))], immutable=lambda path, url: url.endswith(".json"))
    assert "immutable" in serve_once(custom, b"/s/data.json")[1]["cache-control"]  # type: ignore[index]
    assert serve_once(custom, b"/s/app.3f2a1b9c8d7e.css")[1]["cache-control"] == "max-age=86400"  # type: ignore[index]
    # a route of "/" serves from the root; routes are matched longest first
    both = StaticFiles([("/", str(static)), ("/sub2", str(static / "sub"))], index_file="index.html")
    assert serve_once(both, b"/app.css")[0] == 200  # type: ignore[index]
    assert serve_once(both, b"/sub2/")[2] == b"<p>index</p>\n"  # type: ignore[index]


def test_choose_prefers_quality_then_size(tmp_path: Path) -> None:
    static = build_tree(tmp_path)
    engine = StaticFiles([("/s", str(static))])
    entry = engine.files[b"/s/app.css"]
    cases = {b"gzip, br": "br", b"gzip": "gzip", b"br;q=0.5, gzip": "gzip", b"identity": None,
             b"*": "br", b"br;q=0, *": "gzip", b"deflate": None, b"gzip;q=0": None}
    for header, expected in cases.items():
        assert _choose(entry, header).encoding == expected, header  # type: ignore[arg-type]


def test_scan_precomputes_every_file(tmp_path: Path) -> None:
    static = build_tree(tmp_path)
    engine = StaticFiles([("/static", str(static))], index_file="index.html")
    keys = set(engine.files)
    for expected in (b"/static/app.css", b"/static/app.css.gz", b"/static/a%20b.txt", b"/static/%C3%A9.txt",
                     b"/static/sub/", b"/static/sub", b"/static/sub/index.html", b"/static/inlink.css"):
        assert expected in keys
    assert b"/static/escape.txt" not in keys and b"/static/escdir/secret2.txt" not in keys


# -- the real server -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("site")
    static = build_tree(root)
    args = ["--interface", "asgi", "static_apps:echo", "--static-path-route", "/static", "--static-path-mount",
            str(static), "--static-path-route", "/media/files", "--static-path-mount", str(root / "media"),
            "--static-path-dir-to-file", "index.html", "--static-path-expires", "3600", "--access-log"]
    with start_server(args, tmp_path=root) as proc:
        srv: Any = proc
        srv.root = root
        srv.static = static
        with httpx.Client(base_url=srv.url, timeout=30, headers=HTTPX_ACCEPT) as client:
            srv.client = client
            wait_until(lambda: _get_ok(client), what="server ready")
            yield srv


def _get_ok(client: httpx.Client) -> bool:
    try:
        return client.get("/static/app.css").status_code == 200
    except httpx.HTTPError:
        return False


def raw(port: int, target: bytes, method: bytes = b"GET", headers: bytes = b"") -> tuple[int, bytes, bytes]:
    data = http_request(port, method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers
                        + b"\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, head, body


def curl(url: str, *args: str) -> tuple[dict[str, str], bytes]:
    out = subprocess.run(["curl", "-sS", "--path-as-is", "-D", "-", *args, url], capture_output=True, timeout=60,
                         check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {"status": lines[0].split(" ")[1]}
    headers.update({k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])})
    return headers, body


def test_full_response_headers(site: Any) -> None:
    r = site.client.get("/static/app.css", headers={"accept-encoding": "identity"})
    stat = (site.static / "app.css").stat()
    assert r.status_code == 200 and r.content == CSS
    h = r.headers
    assert h["content-type"] == "text/css; charset=utf-8"
    assert h["content-length"] == str(len(CSS))
    assert h["last-modified"] == formatdate(int(stat.st_mtime), usegmt=True)
    assert re.fullmatch(rf'"[0-9a-f]+-{len(CSS):x}"', h["etag"])
    assert h["cache-control"] == "max-age=3600"
    assert h["vary"] == "Accept-Encoding"
    assert h["accept-ranges"] == "bytes"
    assert "content-encoding" not in h and "date" in h
    r = site.client.get("/static/data.json")
    assert r.headers["content-type"] == "application/json" and "vary" not in r.headers
    assert "immutable" not in r.headers["cache-control"]
    r = site.client.get("/static/app.3f2a1b9c8d7e.css")
    assert r.headers["cache-control"] == "max-age=315360000, public, immutable"


@pytest.mark.parametrize(("accept", "encoding"), [
    ("gzip, deflate, br", "br"),
    ("gzip", "gzip"),
    ("br;q=0.5, gzip;q=0.9", "gzip"),
    ("br;q=0, gzip", "gzip"),
    ("*", "br"),
    ("identity", None),
    ("deflate", None),
    (None, None),
])
def test_precompressed_variants(site: Any, accept: str | None, encoding: str | None) -> None:
    headers = {"accept-encoding": accept} if accept else {}
    status, head, body = raw(site.port, b"/static/app.css",
                             headers=b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()))
    assert status == 200
    expected = {"br": FAKE_BR, "gzip": (site.static / "app.css.gz").read_bytes(), None: CSS}[encoding]
    assert body == expected
    assert (b"content-encoding: " + encoding.encode() in head) if encoding else b"content-encoding" not in head
    assert b"vary: Accept-Encoding" in head and b"content-length: %d" % len(expected) in head


def test_precompressed_with_curl(site: Any) -> None:
    headers, body = curl(f"{site.url}/static/app.css", "-H", "Accept-Encoding: br, gzip, deflate, zstd")
    assert headers["content-encoding"] == "br" and headers["vary"] == "Accept-Encoding" and body == FAKE_BR
    headers, body = curl(f"{site.url}/static/app.css", "-H", "Accept-Encoding: gzip")
    assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == CSS
    etag_gz = headers["etag"]
    headers, _ = curl(f"{site.url}/static/app.css")
    assert "content-encoding" not in headers and headers["etag"] != etag_gz


def test_conditional_requests(site: Any) -> None:
    c = site.client
    first = c.get("/static/app.css", headers={"accept-encoding": "identity"})
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    cases: list[tuple[dict, int]] = [
        ({"if-none-match": etag}, 304),
        ({"if-none-match": "W/" + etag}, 304),
        ({"if-none-match": f'"nope", {etag}'}, 304),
        ({"if-none-match": "*"}, 304),
        ({"if-none-match": '"nope"'}, 200),
        ({"if-modified-since": modified}, 304),
        ({"if-modified-since": formatdate(time.time() + 3600, usegmt=True)}, 304),
        ({"if-modified-since": "Sun, 06 Nov 1994 08:49:37 GMT"}, 200),
        ({"if-modified-since": "garbage"}, 200),
        ({"if-none-match": '"nope"', "if-modified-since": modified}, 200),  # If-None-Match wins
    ]
    for headers, status in cases:
        r = c.get("/static/app.css", headers={"accept-encoding": "identity", **headers})
        assert r.status_code == status, headers
        if status == 304:
            assert r.content == b"" and r.headers["etag"] == etag
            assert r.headers["cache-control"] == "max-age=3600" and r.headers["vary"] == "Accept-Encoding"
            assert "content-length" not in r.headers or r.headers["content-length"] == "0"
        else:
            assert r.content == CSS
    # the compressed variant has its own validator
    gz = c.get("/static/app.css", headers={"accept-encoding": "gzip"})
    assert gz.headers["etag"] != etag
    assert c.get("/static/app.css", headers={"accept-encoding": "gzip", "if-none-match": gz.headers["etag"]}
                 ).status_code == 304
    assert c.get("/static/app.css", headers={"accept-encoding": "gzip", "if-none-match": etag}).status_code == 200
    headers, body = curl(f"{site.url}/static/app.css", "-H", f"If-None-Match: {etag}")
    assert headers["status"] == "304" and body == b""


def test_ranges(site: Any) -> None:
    c = site.client
    mid = (site.static / "mid.bin").read_bytes()
    etag = c.head("/static/mid.bin").headers["etag"]
    for path, data in (("/static/app.css", CSS), ("/static/mid.bin", mid)):  # from memory / streamed
        size = len(data)
        cases = [("bytes=0-9", 206, 0, 10), ("bytes=10-", 206, 10, size), ("bytes=-5", 206, size - 5, size),
                 (f"bytes={size - 1}-{size + 10}", 206, size - 1, size), ("bytes=1000-1999", 206, 1000, 2000),
                 ("bytes=0-1,5-6", 200, 0, size), ("bytes=5-1", 200, 0, size), ("lines=1-2", 200, 0, size)]
        for header, status, start, stop in cases:
            r = c.get(path, headers={"range": header, "accept-encoding": "identity"})
            assert r.status_code == status, (path, header)
            assert r.content == data[start:stop], (path, header)
            assert r.headers["content-length"] == str(stop - start)
            if status == 206:
                assert r.headers["content-range"] == f"bytes {start}-{stop - 1}/{size}"
        r = c.get(path, headers={"range": f"bytes={size}-", "accept-encoding": "identity"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}" and r.content == b""
    # If-Range: the range only applies while the validator still matches
    assert c.get("/static/mid.bin", headers={"range": "bytes=0-3", "if-range": etag}).status_code == 206
    r = c.get("/static/mid.bin", headers={"range": "bytes=0-3", "if-range": '"old"'})
    assert r.status_code == 200 and r.content == mid
    headers, body = curl(f"{site.url}/static/mid.bin", "-r", "100-199")
    assert headers["status"] == "206" and body == mid[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(mid)}"
    # a range of a compressed variant is a range of the bytes sent (the .gz file)
    status, head, body = raw(site.port, b"/static/app.css", headers=b"Range: bytes=0-1\r\nAccept-Encoding: gzip\r\n")
    assert status == 206 and b"content-encoding: gzip" in head and body == b"\x1f\x8b"


def test_head_and_methods(site: Any) -> None:
    for path in (b"/static/app.css", b"/static/mid.bin"):
        status, head, body = raw(site.port, path, b"HEAD")
        size = (site.static / path.decode().rsplit("/", 1)[1]).stat().st_size
        assert status == 200 and body == b"" and b"content-length: %d" % size in head and b"etag:" in head
    for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"):
        status, head, body = raw(site.port, b"/static/app.css", method, b"Content-Length: 0\r\n")
        assert status == 405 and b"allow: GET, HEAD" in head, method
    assert site.client.post("/other", content=b"x").text == "app:POST /other"
    headers, _ = curl(f"{site.url}/static/app.css", "-I", "-o", "/dev/null")
    assert headers["status"] == "200" and headers["content-length"] == str(len(CSS))


def test_lookup_rules(site: Any) -> None:
    c = site.client
    assert c.get("/static/nope.css").status_code == 404
    assert c.get("/static/").status_code == 404  # no index file at the mount root
    assert c.get("/static/nosub/").status_code == 404  # directory without index: no listing
    assert c.get("/static/app.css/").status_code == 404
    r = c.get("/static/sub?x=1", follow_redirects=False)
    assert r.status_code == 302 and r.headers["location"] == "/static/sub/?x=1"
    r = c.get("/static/sub/")
    assert r.status_code == 200 and r.content == b"<p>index</p>\n" and r.headers["content-type"].startswith("text/html")
    assert c.get("/static/sub/index.html").content == b"<p>index</p>\n"
    assert c.get("/static/a%20b.txt").content == b"space\n"
    assert c.get("/static/%C3%A9.txt").content == b"accent\n"
    assert c.get("/static/%c3%a9.txt").content == b"accent\n"  # another spelling of the same name
    assert raw(site.port, b"/static/%61pp.css")[2] == CSS
    assert c.get("/static/inlink.css").content == CSS  # a symlink inside the mount is fine
    assert c.get("/static/empty.txt").content == b""
    assert c.get("/media/files/m.txt").content == b"media\n"  # second mount, its own route
    assert c.get("/media/files/app.css").status_code == 404
    assert c.get("/staticx/app.css").text == "app:GET /staticx/app.css"  # not under the route: the app
    assert c.get("/media/other").text == "app:GET /media/other"
    assert c.get("/static/app.css?v=3").content == CSS  # the query string does not matter


TRAVERSALS = [
    b"/static/../secret.txt", b"/static/%2e%2e/secret.txt", b"/static/%2E%2E/secret.txt", b"/static/.%2e/secret.txt",
    b"/static/%252e%252e/secret.txt", b"/static/..%2fsecret.txt", b"/static/%2e%2e%2fsecret.txt",
    b"/static/..%5csecret.txt", b"/static/..\\secret.txt", b"/static/%5c..%5csecret.txt", b"/static/sub/../../secret.txt",
    b"/static/sub/%2e%2e/%2e%2e/secret.txt", b"/static/%2F..%2Fsecret.txt", b"/static//etc/passwd",
    b"/static/%2fetc%2fpasswd", b"/static/app.css%00", b"/static/app.css%00.txt", b"/static/%00../secret.txt",
    b"/static/%c0%ae%c0%ae/secret.txt", b"/static/..;/secret.txt", b"/static/escape.txt", b"/static/escdir/secret2.txt",
    b"/static/escdir/../secret.txt", b"/static/./app.css", b"/static/" + str(Path("/etc/passwd")).encode(),
    b"/static/" + b"/".join([b".."] * 20) + b"/etc/passwd",
]


@pytest.mark.parametrize("target", TRAVERSALS, ids=[t.decode("latin-1") for t in TRAVERSALS])
def test_no_path_escapes_its_mount(site: Any, target: bytes) -> None:
    status, head, body = raw(site.port, target)
    assert status in (400, 404), (status, head)
    assert b"SECRET" not in body and b"root:" not in body and not body.startswith(b"app:")


def test_traversal_with_curl(site: Any) -> None:
    for target in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/escape.txt",
                   "/static/%252e%252e/secret.txt", "/static/..%5csecret.txt"):
        headers, body = curl(site.url + target)
        assert headers["status"] == "404" and b"SECRET" not in body, target


def test_files_added_changed_replaced_and_deleted(site: Any) -> None:
    c = site.client
    late = site.static / "late.css"
    assert c.get("/static/late.css").status_code == 404
    late.write_bytes(b"a{}\n")
    r = c.get("/static/late.css")  # found by a stat on miss, no restart
    assert r.status_code == 200 and r.content == b"a{}\n"
    old_etag = r.headers["etag"]
    late.write_bytes(b"a{color:red}\n")
    r = wait_until(lambda: (x := c.get("/static/late.css")).headers["etag"] != old_etag and x, what="new ETag")
    assert r.content == b"a{color:red}\n" and r.headers["content-length"] == "13"
    # same size, new mtime: still a new ETag (and a 304 for the old one is no longer given)
    etag2 = r.headers["etag"]
    late.write_bytes(b"a{color:rex}\n")
    os.utime(late, (time.time() + 5, time.time() + 5))
    r = wait_until(lambda: (x := c.get("/static/late.css")).headers["etag"] != etag2 and x, what="new ETag 2")
    assert r.content == b"a{color:rex}\n"
    assert c.get("/static/late.css", headers={"if-none-match": etag2}).status_code == 200
    # a .gz appearing next to it is picked up with the next change check
    (site.static / "late.css.gz").write_bytes(gzip.compress(b"a{color:rex}\n"))
    os.utime(late, (time.time() + 10, time.time() + 10))
    wait_until(lambda: c.get("/static/late.css", headers={"accept-encoding": "gzip"}).headers.get(
        "content-encoding") == "gzip", what="gz variant")
    # replaced by a symlink that leaves the mount: never served
    swap = site.static / "swap.txt"
    swap.write_bytes(b"public\n")
    assert c.get("/static/swap.txt").content == b"public\n"
    swap.unlink()
    os.symlink(site.root / "secret.txt", swap)
    wait_until(lambda: c.get("/static/swap.txt").status_code == 404, what="symlink swap refused")
    # deleted
    late.unlink()
    wait_until(lambda: c.get("/static/late.css").status_code == 404, what="deleted file gone")


def test_pipelined_static_responses_stay_in_order(site: Any) -> None:
    mid = (site.static / "mid.bin").read_bytes()
    req = b"GET /static/%s HTTP/1.1\r\nHost: x\r\n\r\n"
    data = req % b"mid.bin" + req % b"app.css" + req % b"mid.bin" + b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = http_request(site.port, data, timeout=30)
    bodies = []
    while out:
        head, _, rest = out.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
        bodies.append(rest[:length])
        out = rest[length:]
    assert bodies == [mid, CSS, mid, b"app:GET /x"]


def test_http10_keep_alive(site: Any) -> None:
    with socket.create_connection(("127.0.0.1", site.port), timeout=10) as sock:
        sock.sendall(b"GET /static/data.json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data = b""
        while b'{"a": 1}' not in data:
            data += sock.recv(65536)
        assert data.startswith(b"HTTP/1.1 200") and b"connection: keep-alive" in data.lower()


def test_access_log(site: Any) -> None:
    c = site.client
    etag = c.get("/static/app.css").headers["etag"]
    c.get("/static/app.css", headers={"if-none-match": etag})
    c.get("/static/mid.bin", headers={"range": "bytes=0-0"})
    c.get("/static/missing-for-log.css")
    line = '"GET /static/missing-for-log.css HTTP/1.1" 404'
    out = wait_until(lambda: next((o for o in [site.output()] if line in o), None), what="access log")
    assert '"GET /static/app.css HTTP/1.1" 304' in out and '"GET /static/mid.bin HTTP/1.1" 206' in out
    assert '"GET /static/mid.bin HTTP/1.1" 200' in out  # a streamed (sendfile) response is logged too


def test_metrics_count_static_hits(tmp_path: Path) -> None:
    static = build_tree(tmp_path)
    metrics_port = free_port()
    args = ["--interface", "asgi", "static_apps:echo", "--static-path-mount", str(static), "--metrics",
            "--metrics-port", str(metrics_port), "--metrics-scrape-interval", "1"]
    with start_server(args, tmp_path=tmp_path) as srv, httpx.Client(base_url=srv.url, timeout=30,
                                                                    headers=HTTPX_ACCEPT) as c:
        etag = c.get("/static/app.css").headers["etag"]
        assert c.get("/static/app.css", headers={"if-none-match": etag}).status_code == 304
        assert c.get("/static/mid.bin", headers={"range": "bytes=0-0"}).status_code == 206
        assert c.get("/static/mid.bin").status_code == 200

        def scraped() -> str | None:
            try:
                text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
            except httpx.ConnectError:
                return None
            return text if re.search(r'responses_total\{[^}]*status="206"[^}]*\} [1-9]', text) else None

        text = wait_until(scraped, timeout=20, what="metrics")
        assert re.search(r'responses_total\{[^}]*status="304"[^}]*\} [1-9]', text)
        assert re.search(r'responses_total\{[^}]*status="200"[^}]*\} [2-9]', text)


def _stream_measuring(client: httpx.Client, url: str, pid: int) -> tuple[str, int, int]:
    """Download ``url`` (md5), sampling the server's RSS meanwhile: (md5, baseline, peak)."""
    baseline = tree_rss(pid)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    digest = hashlib.md5()
    try:
        with client.stream("GET", url, headers={"accept-encoding": "identity"}) as r:
            assert r.status_code == 200 and r.headers["content-length"] == str(BIG_SIZE)
            for chunk in r.iter_raw(65536):
                digest.update(chunk)
    finally:
        done.set()
        sampler.join()
    return digest.hexdigest(), baseline, peak


def test_large_file_streams_without_loading_it(site: Any) -> None:
    big = site.static / "big50.bin"
    md5 = make_big(big)
    try:
        site.client.get("/static/mid.bin")  # warm up the streaming path
        got, baseline, peak = _stream_measuring(site.client, "/static/big50.bin", site.proc.pid)
        assert got == md5
        assert peak - baseline < 20 * 1024 * 1024, f"server RSS grew by {(peak - baseline) >> 20} MiB"
    finally:
        big.unlink()


# -- TLS and HTTP/2: the chunked path ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    trustme = pytest.importorskip("trustme")
    root = tmp_path_factory.mktemp("tls-site")
    static = build_tree(root)
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    chain, key = root / "chain.pem", root / "key.pem"
    chain.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    ca_file = root / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    args = ["--interface", "asgi", "static_apps:echo", "--static-path-mount", str(static), "--ssl-certificate",
            str(chain), "--ssl-keyfile", str(key), "--http", "auto", "--access-log"]
    with start_server(args, tmp_path=root) as proc:
        srv: Any = proc
        srv.static = static
        srv.ssl_context = ssl.create_default_context(cafile=str(ca_file))
        yield srv


def test_tls_http1_and_http2(tls_site: Any) -> None:
    base = f"https://127.0.0.1:{tls_site.port}"
    mid = (tls_site.static / "mid.bin").read_bytes()
    for http2 in (False, True):
        with httpx.Client(base_url=base, verify=tls_site.ssl_context, http2=http2, timeout=60,
                          headers=HTTPX_ACCEPT) as c:
            r = c.get("/static/app.css", headers={"accept-encoding": "gzip"})
            assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            assert r.status_code == 200 and r.content == CSS and r.headers["content-encoding"] == "gzip"
            assert c.get("/static/mid.bin").content == mid
            r = c.get("/static/mid.bin", headers={"range": "bytes=5000-"})
            assert r.status_code == 206 and r.content == mid[5000:]
            assert c.get("/static/app.css", headers={"if-none-match": r.headers["etag"]}).status_code == 200
            assert c.head("/static/mid.bin").headers["content-length"] == str(len(mid))
            r = c.get("/static/%2e%2e/secret.txt")
            assert r.status_code == 404 and b"SECRET" not in r.content
    big = tls_site.static / "big50.bin"
    md5 = make_big(big)
    try:
        for http2 in (False, True):
            with httpx.Client(base_url=base, verify=tls_site.ssl_context, http2=http2, timeout=120,
                              headers=HTTPX_ACCEPT) as c:
                c.get("/static/mid.bin")
                got, baseline, peak = _stream_measuring(c, "/static/big50.bin", tls_site.proc.pid)
            assert got == md5
            assert peak - baseline < 25 * 1024 * 1024, f"RSS grew by {(peak - baseline) >> 20} MiB (h2={http2})"
    finally:
        big.unlink()
    assert '"GET /static/mid.bin HTTP/2" 206' in tls_site.output()


def test_whitenoise_compress_output_is_served(tmp_path: Path) -> None:
    """Files compressed by whitenoise's own compressor (as collectstatic does) are picked up."""
    from whitenoise.compress import Compressor

    static = tmp_path / "s"
    static.mkdir()
    (static / "site.css").write_bytes(CSS)
    compressor = Compressor(use_brotli=False, quiet=True)
    for _ in compressor.compress(str(static / "site.css")):
        pass
    engine = StaticFiles([("/s", str(static))])
    status, headers, body = serve_once(engine, b"/s/site.css", headers=[(b"accept-encoding", b"gzip")])  # type: ignore[misc]
    assert status == 200 and headers["content-encoding"] == "gzip" and gzip.decompress(body) == CSS
    shutil.rmtree(static)
