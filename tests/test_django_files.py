"""nginx's other jobs for a Django site, in testproject under ``manage.py granian``: private files
through django-sendfile2 (X-Accel-Redirect), MEDIA_ROOT with ``serve_media``, compression on the fast
path, and the MEDIA_ROOT/STATIC_ROOT system check. HTTP/1.1 and HTTP/2 (httpx, prior knowledge)."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import httpx
import pytest

from tests.core_client import wait_until
from tests.test_django import django_server, manage, print_config, project_env, static_root  # noqa: F401

REPORT = b"%PDF-1.4 quarterly numbers\n" * 400


@pytest.fixture
def private_env(project_env: dict[str, str], tmp_path: Path) -> dict[str, str]:  # noqa: F811
    private = tmp_path / "private"
    (private / "reports").mkdir(parents=True)
    (private / "reports" / "q3.pdf").write_bytes(REPORT)
    (private / "résumé 1.txt").write_bytes(b"unicode name")
    project_env["TESTPROJECT_PRIVATE_ROOT"] = str(private)
    project_env["TESTPROJECT_MEDIA_ROOT"] = str(tmp_path / "media")
    return project_env


def clients(url: str):  # type: ignore[no-untyped-def]
    return [httpx.Client(base_url=url, timeout=15), httpx.Client(base_url=url, timeout=15, http1=False, http2=True)]


def test_sendfile2_settings_become_the_internal_route(private_env: dict[str, str], tmp_path: Path) -> None:
    config = print_config(private_env)
    options = config["options"] if "options" in config else config
    text = json.dumps(options)
    assert "/protected" in text and "SENDFILE_URL" in text and "SENDFILE_ROOT" in text, text


def test_private_download_through_sendfile2(private_env: dict[str, str], tmp_path: Path) -> None:
    with django_server(private_env, tmp_path) as srv:
        wait_until(srv.logged("X-Accel-Redirect / X-Sendfile: internal routes /protected"), what=srv.output)
        for client in clients(srv.url):
            with client:
                assert client.get("/private/reports/q3.pdf").status_code == 403  # the view decides
                r = client.get("/private/reports/q3.pdf?key=letmein")
                assert r.status_code == 200 and r.content == REPORT
                assert r.headers["content-type"] == "application/pdf"
                assert r.headers["content-disposition"] == 'attachment; filename="q3.pdf"'
                assert r.headers["content-length"] == str(len(REPORT)) and r.headers["accept-ranges"] == "bytes"
                assert "x-accel-redirect" not in r.headers
                etag = r.headers["etag"]
                assert client.get("/private/reports/q3.pdf?key=letmein",
                                  headers={"if-none-match": etag}).status_code == 304
                part = client.get("/private/reports/q3.pdf?key=letmein", headers={"range": "bytes=5-9"})
                assert part.status_code == 206 and part.content == REPORT[5:10]
                u = client.get("/private/résumé 1.txt?key=letmein")  # django-sendfile2 percent-encodes the URL
                assert u.status_code == 200 and u.content == b"unicode name"
                # the internal route is internal: a client asking for it directly reaches Django (404)
                direct = client.get("/protected/reports/q3.pdf")
                assert direct.status_code == 404 and direct.content != REPORT
                missing = client.get("/private/reports/nope.pdf?key=letmein")
                assert missing.status_code == 404  # django-sendfile2 checks first (SENDFILE_CHECK_FILE_EXISTS)


@pytest.fixture
def media_env(private_env: dict[str, str]) -> dict[str, str]:
    private_env["TESTPROJECT_GRANIAN"] = json.dumps({"serve_media": True})
    return private_env


def _upload(client: httpx.Client, url: str, name: str, data: bytes, ctype: str) -> str:
    form = client.get("/upload/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    r = client.post("/upload/?save=1", data={"csrfmiddlewaretoken": token}, files={"file": (name, data, ctype)},
                    headers={"referer": url + "/upload/"})
    assert r.status_code == 200, r.text
    return r.json()["url"]


def test_serve_media(media_env: dict[str, str], tmp_path: Path) -> None:
    with django_server(media_env, tmp_path) as srv:
        out = wait_until(srv.logged("Options:"), what=srv.output)
        assert "--serve-media=True (settings.GRANIAN)" in out and "(MEDIA_ROOT)" in out
        assert (tmp_path / "media").is_dir()  # created, as FileSystemStorage would on the first upload
        with httpx.Client(base_url=srv.url, timeout=15) as client:
            # files uploaded after the server started are found
            text_url = _upload(client, srv.url, "notes.txt", b"plain notes", "text/plain")
            html_url = _upload(client, srv.url, "evil.html", b"<script>alert(1)</script>", "text/html")
            svg_url = _upload(client, srv.url, "pic.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                              "image/svg+xml")
        assert text_url.startswith("/media/uploads/")
        for client in clients(srv.url):
            with client:
                r = client.get(text_url)
                assert r.status_code == 200 and r.content == b"plain notes"
                assert r.headers["x-content-type-options"] == "nosniff"
                assert "content-disposition" not in r.headers and r.headers["etag"]
                assert "cache-control" not in r.headers  # --media-path-expires 0: revalidate with the ETag
                for url in (html_url, svg_url):  # types a browser runs script in: download, never render
                    r = client.get(url)
                    assert r.status_code == 200 and r.headers["content-disposition"] == "attachment"
                    assert r.headers["x-content-type-options"] == "nosniff"
                assert client.get("/media/uploads/").status_code == 404   # no directory listing
                assert client.get("/media/uploads").status_code == 404
                assert client.get("/media/../testproject/settings.py").status_code == 404
                assert client.get("/media/%2e%2e/db.sqlite3").status_code == 404
                assert client.get("/media/uploads/missing.txt").status_code == 404
                assert client.post(text_url).status_code == 405


def test_media_is_not_served_without_opting_in(private_env: dict[str, str], tmp_path: Path) -> None:
    media = tmp_path / "media" / "uploads"
    media.mkdir(parents=True)
    (media / "notes.txt").write_bytes(b"plain notes")
    with django_server(private_env, tmp_path) as srv:
        r = httpx.get(srv.url + "/media/uploads/notes.txt", timeout=15)
        assert r.status_code == 404 and r.content != b"plain notes"  # Django's 404: nobody serves MEDIA_ROOT


@pytest.mark.parametrize("layout", ["media-in-static", "static-in-media", "same"])
def test_media_and_static_root_apart_check(project_env: dict[str, str], tmp_path: Path, layout: str) -> None:  # noqa: F811
    static = Path(project_env["TESTPROJECT_STATIC_ROOT"])
    media = {"media-in-static": static / "media", "static-in-media": static.parent, "same": static}[layout]
    project_env["TESTPROJECT_MEDIA_ROOT"] = str(media)
    proc = manage("check", "--tag", "django_granian", env=project_env)
    assert "django_granian.W004" in proc.stderr + proc.stdout, proc.stderr


def test_media_and_static_root_apart_no_warning(private_env: dict[str, str]) -> None:
    proc = manage("check", "--tag", "django_granian", env=private_env)
    assert "W004" not in proc.stderr + proc.stdout


def _gunzip(data: bytes) -> bytes:
    return zlib.decompress(data, 16 + zlib.MAX_WBITS)


def test_compression_on_the_fast_path(private_env: dict[str, str], tmp_path: Path) -> None:
    private_env["TESTPROJECT_GRANIAN"] = json.dumps({"compress": True})
    with django_server(private_env, tmp_path) as srv:
        wait_until(srv.logged("Compression: zstd (level 3), br (level 4), gzip (level 6)"), what=srv.output)
        for client in clients(srv.url):
            with client:
                with client.stream("GET", "/bench/page/", headers={"accept-encoding": "gzip"}) as r:
                    raw = b"".join(r.iter_raw())
                assert r.headers["content-encoding"] == "gzip" and r.headers["vary"] == "Accept-Encoding"
                page = _gunzip(raw)
                assert page.startswith(b"<!doctype html>") and len(raw) < len(page) / 5
                r = client.get("/bench/data/", headers={"accept-encoding": "zstd"})  # httpx decodes zstd
                assert r.headers["content-encoding"] == "zstd" and r.json()["count"] == 1000
                # a page with a CSRF token re-sends the csrftoken cookie: not compressed (BREACH)
                form = client.get("/upload/", headers={"accept-encoding": "gzip"})
                assert "csrftoken" in form.headers.get("set-cookie", "")
                assert "content-encoding" not in form.headers and "csrfmiddlewaretoken" in form.text
        # server-sent events compressed and still event by event
        with httpx.Client(base_url=srv.url, timeout=15) as client:
            with client.stream("GET", "/events/", headers={"accept-encoding": "gzip"}) as r:
                assert r.headers["content-encoding"] == "gzip"
                lines = r.iter_lines()  # decoded by httpx as the chunks arrive
                assert next(lines) == "data: first"
                assert client.get("/events/release/").json() == {"released": True}
                assert [line for line in lines if line] == ["data: second"]


def test_slow_clients_do_not_hold_the_only_thread(private_env: dict[str, str], tmp_path: Path) -> None:
    """--blocking-threads 1: a phone-speed upload to the CSRF-protected form view and a client that reads
    nothing of a 32 MiB response; /api/health, which needs the same thread, is answered meanwhile."""
    import hashlib
    import socket
    import threading

    from tests.core_client import Conn, get

    data = bytes(range(256)) * 1200  # 300 KiB: spooled to a temporary file (over 256 KiB)
    with django_server(private_env, tmp_path, "--blocking-threads", "1") as srv:
        with httpx.Client(base_url=srv.url, timeout=15) as client:
            form = client.get("/upload/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
            cookie = form.cookies["csrftoken"]
            body = httpx.Request("POST", srv.url + "/upload/", data={"csrfmiddlewaretoken": token},
                                 files={"file": ("slow.bin", data, "application/octet-stream")})
            payload = body.read()
            head = get("/upload/", f"Content-Type: {body.headers['content-type']}",
                       f"Content-Length: {len(payload)}", f"Cookie: csrftoken={cookie}",
                       f"Referer: {srv.url}/upload/", method="POST")
            release = threading.Event()
            result: dict = {}

            def slow_upload() -> None:
                with Conn(srv.port, timeout=30) as c:
                    c.send(head)
                    for i in range(0, 40 * 1024, 1024):  # ~10 KB/s for the first 40 KiB
                        c.send(payload[i:i + 1024])
                        release.wait(0.1)
                    result["holding"] = True
                    release.wait(30)
                    c.send(payload[40 * 1024:])
                    result["response"] = c.read_response()

            uploader = threading.Thread(target=slow_upload, daemon=True)
            uploader.start()
            wait_until(lambda: result.get("holding"), timeout=30)
            assert client.get("/api/health").json() == {"status": "ok"}  # the upload is incomplete
            reader = socket.create_connection(("127.0.0.1", srv.port), timeout=15)
            try:
                reader.sendall(get("/big/?mb=32"))
                assert reader.recv(1024).startswith(b"HTTP/1.1 200")
                assert client.get("/api/health").json() == {"status": "ok"}  # 32 MiB unread, thread free
            finally:
                reader.close()
            release.set()
            uploader.join(30)
            r = result["response"]
            assert r.status == 200, r.body
            assert json.loads(r.body)["sha256"] == hashlib.sha256(data).hexdigest()
