"""HTTP/3 through everything that serves an app: the Django testproject (``manage.py granian``), RSGI,
``--url-path-prefix`` and proxy headers, ``--metrics``, and ``--workers N`` (one UDP socket per slot)."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys

import pytest

from tests.conftest import ROOT, free_port
from tests.core_client import wait_until
from tests.h3_client import H3Client, h3_request
from tests.test_http3 import certs, free_udp_tcp_port, h3_server, tls, wait_h3  # noqa: F401  (certs: fixture)

pytest.importorskip("aioquic")


def test_django_testproject_page_static_and_async_view(certs, tmp_path_factory):  # noqa: F811
    static_root = tmp_path_factory.mktemp("h3static")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRANIAN_", "TESTPROJECT_"))}
    env["TESTPROJECT_STATIC_ROOT"] = str(static_root)
    env["TESTPROJECT_DB"] = str(static_root / "db.sqlite3")
    import subprocess

    manage = str(ROOT / "testproject" / "manage.py")
    subprocess.run([sys.executable, manage, "collectstatic", "--noinput", "-v0"], check=True, timeout=120, env=env)
    with h3_server(["--workers", "1"], certs, env=env, tmp_path=static_root,
                   cmd=[sys.executable, manage, "granian"]) as srv:
        wait_h3(srv)
        ca = str(certs / "ca.pem")

        async def go():
            async with H3Client.connect(srv.port, ca) as client:
                page = await client.get("/")
                assert page.status == 200 and b"<html" in page.body.lower()
                info = json.loads((await client.get("/info/")).body)
                assert info["via"] == "wsgi"  # the Django fast path (sync views at WSGI speed)
                assert info["scheme"] == "https" and info["is_secure"] is True
                css = await client.get(info["static_css"], (b"accept-encoding", b"gzip"))
                assert css.status == 200 and css.header("content-encoding") == b"gzip"  # STATIC_ROOT, precompressed
                assert css.header("cache-control") and b"immutable" in css.header("cache-control")
                again = await client.get(info["static_css"], (b"if-none-match", css.header("etag")),
                                         (b"accept-encoding", b"gzip"))
                assert again.status == 304
                login = await client.get("/admin/login/")
                assert login.status == 200 and b"csrfmiddlewaretoken" in login.body
                resp = await client.get("/async/")
                assert resp.status == 200

        asyncio.run(go())


def test_rsgi_over_http3(certs):  # noqa: F811
    with h3_server(["--interface", "rsgi", "rsgi_apps:app"], certs) as srv:
        wait_h3(srv)
        ca = str(certs / "ca.pem")
        scope = json.loads(h3_request(srv.port, ca, "GET", "/scope?a=1").body)
        assert scope["http_version"] == "3" and scope["scheme"] == "https" and scope["query_string"] == "a=1"
        assert h3_request(srv.port, ca, "POST", "/echo", body=b"rsgi body").body == b"rsgi body"
        assert h3_request(srv.port, ca, "GET", "/stream").body == b"part0;part1;part2;part3;part4;end"


def test_url_path_prefix_and_proxy_headers(certs):  # noqa: F811
    args = ["--interface", "asgi", "h2_apps:app", "--url-path-prefix", "/app", "--forwarded-allow-ips", "127.0.0.1"]
    with h3_server(args, certs) as srv:
        wait_h3(srv)
        ca = str(certs / "ca.pem")
        outside = h3_request(srv.port, ca, "GET", "/scope")
        assert outside.status == 404
        inside = h3_request(srv.port, ca, "GET", "/app/scope", [(b"x-forwarded-for", b"203.0.113.7"),
                                                                 (b"x-forwarded-proto", b"https")])
        assert inside.status == 200
        info = json.loads(inside.body)
        assert info["path"] == "/app/scope" and info["root_path"] == "/app" and info["http_version"] == "3"
        assert info["client"][0] == "203.0.113.7" and info["scheme"] == "https"  # the trusted proxy's headers
        direct = json.loads(h3_request(srv.port, ca, "GET", "/app/scope").body)
        assert direct["client"][0] == "127.0.0.1"  # without the headers: the UDP peer


def test_metrics_count_http3_responses(certs, tmp_path):  # noqa: F811
    from tests.test_metrics import metrics_where, total

    mport = free_port()
    args = ["--interface", "asgi", "workers_app:app", "--metrics", "--metrics-port", str(mport),
            "--metrics-scrape-interval", "1"]
    with h3_server(args, certs, tmp_path=tmp_path) as srv:
        wait_h3(srv)
        ca = str(certs / "ca.pem")

        async def go():
            async with H3Client.connect(srv.port, ca) as client:
                for _ in range(3):
                    assert (await client.get("/")).status == 200

        asyncio.run(go())
        wait_until(metrics_where(mport, lambda m: total(m, "django_granian_responses_total") == 3
                                 and total(m, "django_granian_request_duration_seconds_count") == 3), 30)


def test_workers_each_serve_their_own_connections(certs, tmp_path):  # noqa: F811
    """--workers 3: one SO_REUSEPORT UDP socket per slot; every connection stays on one worker (the
    kernel hashes the client's address and port) and together they reach more than one worker."""
    with h3_server(["--interface", "asgi", "workers_app:app", "--workers", "3"], certs, tmp_path=tmp_path) as srv:
        wait_until(lambda: srv.output().count("started") >= 2 and "(HTTP/3, UDP" in srv.output(), 30,
                   what="three workers")
        ca = str(certs / "ca.pem")

        async def go():
            per_worker: collections.Counter = collections.Counter()
            for _ in range(24):
                async with H3Client.connect(srv.port, ca) as client:
                    pids = {(await client.get("/")).body for _ in range(4)}
                    assert len(pids) == 1  # one connection, one worker
                    per_worker[pids.pop()] += 1
            return per_worker

        per_worker = asyncio.run(go())
        assert len(per_worker) >= 2, per_worker
        assert "3 sockets" in srv.output()
