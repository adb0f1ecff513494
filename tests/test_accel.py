"""X-Accel-Redirect / X-Sendfile: the path mapping (a table over a real directory tree with symlinks)
and the real server under ASGI, WSGI and RSGI over HTTP/1.1 and HTTP/2."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from django_granian.static_files.accel import ACCEL_REDIRECT, SENDFILE, InternalFiles

from .conftest import ServerProcess, start_server
from .core_client import Conn, get

REPORT = b"%PDF-1.4 a private report\n" * 10
BIG = os.urandom(1024 * 1024 + 17)


def tree(root: Path) -> tuple[Path, Path, Path]:
    private, share, outside = root / "private", root / "share", root / "outside"
    for d in (private / "sub", share, outside):
        d.mkdir(parents=True)
    (private / "r.pdf").write_bytes(REPORT)
    (private / "big.bin").write_bytes(BIG)
    (private / "sub" / "b.txt").write_bytes(b"b")
    (private / "sp ace é.txt").write_bytes(b"unicode")
    (private / "%2e%2e").write_bytes(b"a file named %2e%2e")
    (outside / "secret.txt").write_bytes(b"SECRET")
    (private / "link-out").symlink_to(outside)
    (private / "link-secret").symlink_to(outside / "secret.txt")
    (private / "link-in").symlink_to(private / "r.pdf")
    (share / "x.txt").write_bytes(b"shared")
    (share / "out").symlink_to(outside / "secret.txt")
    return private, share, outside


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[InternalFiles, Path, Path, Path]:
    root = tmp_path_factory.mktemp("accel")
    private, share, outside = tree(root)
    return InternalFiles([("/protected", str(private))], [str(share)]), private, share, outside


@pytest.mark.parametrize(("value", "found"), [
    (b"/protected/r.pdf", "r.pdf"),
    (b"/protected/sub/b.txt", "sub/b.txt"),
    (b"/protected/r.pdf?download=1", "r.pdf"),           # a query string is ignored
    (b" /protected/r.pdf ", "r.pdf"),
    (b"/protected/sp%20ace%20%C3%A9.txt", "sp ace é.txt"),  # percent-decoded once (django-sendfile2 quotes)
    (b"/protected/%252e%252e", "%2e%2e"),                # ... only once: a literal name, not a parent
    (b"/protected/link-in", "r.pdf"),                    # a symlink that stays inside
    (b"/protected/../outside/secret.txt", None),
    (b"/protected/%2e%2e/outside/secret.txt", None),
    (b"/protected/%2E%2E%2Foutside%2Fsecret.txt", None),
    (b"/protected/..%2f..%2foutside/secret.txt", None),
    (b"/protected/sub/..%5c..%5coutside", None),
    (b"/protected/%c0%ae%c0%ae/outside/secret.txt", None),  # overlong UTF-8
    (b"/protected/./r.pdf", None),
    (b"/protected//r.pdf", None),
    (b"/protected/sub\\b.txt", None),
    (b"/protected/r.pdf%00.png", None),
    (b"/protected/r.pdf\x00", None),
    (b"/protected/link-out/secret.txt", None),          # symlinked directory leaving the mount
    (b"/protected/link-secret", None),                  # symlinked file leaving the mount
    (b"/protected/sub/", None),                         # a directory: no listing
    (b"/protected/sub", None),
    (b"/protected", None),
    (b"/protected/missing.pdf", None),
    (b"/protectedx/r.pdf", None),                       # not the route, only a prefix of its name
    (b"/other/r.pdf", None),
    (b"protected/r.pdf", None),                          # not a path
    (b"", None),
    (b"\x00sendfile/0/x.txt", None),                     # the X-Sendfile roots are not reachable this way
])
def test_accel_redirect_mapping(files, value: bytes, found: str | None) -> None:  # type: ignore[no-untyped-def]
    internal, private, _, _ = files
    key = internal.key_for(ACCEL_REDIRECT, value)
    entry = internal.engine.lookup(key) if key is not None else None
    assert (os.path.relpath(os.path.realpath(entry.path), private) if entry else None) == found


@pytest.mark.parametrize(("value", "found"), [
    ("{share}/x.txt", "x.txt"),
    ("{share}/../outside/secret.txt", None),
    ("{share}/./x.txt", None),
    ("{share}//x.txt", None),
    ("{outside}/secret.txt", None),                      # not under a root
    ("{share}", None),                                   # the root itself
    ("{share}/out", None),                               # a symlink out of the root
    ("{share}/x.txt\x00", None),
    ("{share}/missing", None),
    ("x.txt", None),                                     # relative
    ("{share}x/x.txt", None),                            # a sibling directory sharing the prefix
])
def test_x_sendfile_mapping(files, value: str, found: str | None) -> None:  # type: ignore[no-untyped-def]
    internal, _, share, outside = files
    raw = value.format(share=share, outside=outside).encode()
    key = internal.key_for(SENDFILE, raw)
    entry = internal.engine.lookup(key) if key is not None else None
    assert (os.path.relpath(entry.path, share) if entry else None) == found


def test_x_sendfile_is_opt_in(files) -> None:  # type: ignore[no-untyped-def]
    _, private, share, _ = files
    only_accel = InternalFiles([("/protected", str(private))], [])
    assert only_accel.key_for(SENDFILE, str(share / "x.txt").encode()) is None
    only_sendfile = InternalFiles([], [str(share)])
    assert only_sendfile.key_for(ACCEL_REDIRECT, b"/protected/r.pdf") is None


# -- the real server ------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["asgi", "wsgi", "rsgi"])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("accel-server")
    private, share, outside = tree(root)
    iface = request.param
    with start_server(["--interface", iface, f"filter_apps:{iface}", "--x-accel-route", "/protected",
                       "--x-accel-mount", str(private), "--x-sendfile-root", str(share)], tmp_path=root,
                      env={"FILTER_FILE": str(private / "r.pdf")}) as server:
        server.share = share  # type: ignore[attr-defined]
        server.outside = outside  # type: ignore[attr-defined]
        yield server


def fetch(srv: ServerProcess, proto: str, path: str, *headers: str, method: str = "GET"
          ) -> tuple[int, dict[bytes, list[bytes]], bytes]:
    if proto == "h1":
        with Conn(srv.port) as c:
            r = c.request(get(path, *headers, method=method), head=method == "HEAD")
            out: dict[bytes, list[bytes]] = {}
            for n, v in r.headers:
                out.setdefault(n, []).append(v)
            return r.status, out, r.body
    hdrs = [tuple(h.split(": ", 1)) for h in headers]
    with httpx.Client(http1=False, http2=True, base_url=srv.url, timeout=15) as client:
        resp = client.request(method, path, headers=hdrs)
        assert resp.http_version == "HTTP/2"
        out = {}
        for n, v in resp.headers.raw:
            out.setdefault(n, []).append(v)
        return resp.status_code, out, resp.content


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_redirect_serves_the_file_with_the_apps_headers(srv: ServerProcess, proto: str) -> None:
    status, h, body = fetch(srv, proto, "/accel?to=/protected/r.pdf")
    assert status == 200 and body == REPORT
    assert h[b"content-type"] == [b"application/pdf"]                       # the app's
    assert h[b"content-disposition"] == [b'attachment; filename="r.pdf"']   # the app's
    assert h[b"x-app"] == [b"kept"]
    assert h[b"content-length"] == [str(len(REPORT)).encode()]              # the file's, not the app's 27
    assert h[b"etag"] != [b'"app-etag"'] and h[b"last-modified"] and h[b"accept-ranges"] == [b"bytes"]
    assert not [n for n in h if n.startswith(b"x-accel") or n == b"x-sendfile"]
    etag = h[b"etag"][0].decode()
    status, h, body = fetch(srv, proto, "/accel?to=/protected/r.pdf", f"If-None-Match: {etag}")
    assert status == 304 and body == b"" and b"x-accel-redirect" not in h
    status, h, body = fetch(srv, proto, "/accel?to=/protected/r.pdf", "Range: bytes=0-7")
    assert status == 206 and body == REPORT[:8] and h[b"content-range"] == [f"bytes 0-7/{len(REPORT)}".encode()]
    status, h, body = fetch(srv, proto, "/accel?to=/protected/r.pdf", method="HEAD")
    assert status == 200 and body == b"" and h[b"content-length"] == [str(len(REPORT)).encode()]


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_large_file(srv: ServerProcess, proto: str) -> None:
    status, h, body = fetch(srv, proto, "/accel?to=/protected/big.bin")
    assert status == 200 and body == BIG


@pytest.mark.parametrize("proto", ["h1", "h2"])
@pytest.mark.parametrize("target", [
    "/protected/missing.pdf", "/protected/../outside/secret.txt", "/protected/%252e%252e%252fr.pdf",
    "/protected/%2e%2e/outside/secret.txt", "/protected/link-out/secret.txt", "/protected/r.pdf%2500",
    "/elsewhere/r.pdf", "/protected/sub/",
])
def test_refused_targets_are_404_and_logged(srv: ServerProcess, proto: str, target: str) -> None:
    from urllib.parse import quote

    status, h, body = fetch(srv, proto, "/accel?to=" + quote(target, safe=""))
    assert status == 404 and b"SECRET" not in body and b"leak" not in body
    assert not [n for n in h if n.startswith(b"x-accel")]
    assert "X-Accel-Redirect" in srv.output() and "answered 404" in srv.output()


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_x_sendfile(srv: ServerProcess, proto: str) -> None:
    share, outside = srv.share, srv.outside  # type: ignore[attr-defined]
    status, h, body = fetch(srv, proto, f"/sendfile?to={share}/x.txt")
    assert status == 200 and body == b"shared" and b"x-sendfile" not in h
    status, h, body = fetch(srv, proto, f"/sendfile?to={outside}/secret.txt")
    assert status == 404 and body != b"SECRET"
    status, h, body = fetch(srv, proto, f"/sendfile?to={share}/out")  # symlink out of the root
    assert status == 404 and body != b"SECRET"


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_a_streaming_app_is_stopped(srv: ServerProcess, proto: str) -> None:
    status, h, body = fetch(srv, proto, "/accel-stream?to=/protected/r.pdf")
    assert status == 200 and body == REPORT
    assert "the stream was never stopped" not in srv.output()


def test_other_x_accel_headers_never_leak(srv: ServerProcess) -> None:
    status, h, body = fetch(srv, "h1", "/buffering")
    assert status == 200 and body == b"plain" and b"x-accel-buffering" not in h


def test_pipelined_after_a_redirect(srv: ServerProcess) -> None:
    with Conn(srv.port) as c:
        c.send(get("/accel?to=/protected/big.bin") + get("/accel?to=/protected/missing") + get("/small"))
        assert c.read_response().body == BIG
        assert c.read_response().status == 404
        assert c.read_response().body == b"0123456789"


def test_without_routes_the_app_response_is_untouched(tmp_path: Path) -> None:
    with start_server(["--interface", "asgi", "filter_apps:asgi"], tmp_path=tmp_path) as server:
        status, h, body = fetch(server, "h1", "/accel?to=/protected/r.pdf")
        assert status == 200 and h[b"x-accel-redirect"] == [b"/protected/r.pdf"]
