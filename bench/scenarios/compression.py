"""compression: testproject's 40 KB HTML page and 200 KB JSON, compressed, 1 worker, HTTP/1.1 keep-alive.

``manage.py granian --compress`` (the server compresses) against Django's GZipMiddleware under Granian's
WSGI server and against nginx ``gzip on`` in front of Granian WSGI (the set-up the issue replaces). All
three do gzip level 6 for ``Accept-Encoding: gzip``, so their bodies are the same size (GZipMiddleware
adds 0–99 random bytes). The ``zstd`` workloads send what browsers send (``gzip, deflate, br, zstd``):
the others still answer gzip 6, ours answers zstd; ``--compress-zstd-level 5`` is the level whose output
is no larger than gzip 6 on both bodies (sizes in docs/benchmarks/compression.md).
"""

from __future__ import annotations

import socket
from pathlib import Path

from bench.loadgen import Wrk
from bench.spec import GRANIAN, Scenario, Server, Workload, register

ENV = {"DJANGO_SETTINGS_MODULE": "testproject.settings", "PYTHONPATH": "{root}/testproject:{root}"}
GZIP_ENV = {**ENV, "TESTPROJECT_GZIP": "1"}
CWD = "{root}/testproject"
MANAGE = ["{python}", "manage.py", "granian", "--host", "{host}", "--port", "{port}", "--workers", "1",
          "--log-level", "warning", "--no-access-log", "--compress"]
GZIP = ("Accept-Encoding: gzip",)
BROWSER = ("Accept-Encoding: gzip, deflate, br, zstd",)


def backend_port(tmp: Path) -> dict[str, str]:
    """A second free port: Granian behind nginx listens there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp.chmod(0o755)  # nginx workers may run as another user
    return {"backend_port": str(port)}


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    upstream app {{ server {host}:{backend_port}; keepalive 64; }}
    gzip on;
    gzip_comp_level 6;
    gzip_min_length 512;
    gzip_types application/json;
    gzip_vary on;
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


def write_nginx_conf(ctx: dict[str, str]) -> None:
    Path(ctx["tmp"], "nginx.conf").write_text(NGINX_CONF.format(**ctx))


def _shell(*parts: str) -> list[str]:
    return ["sh", "-c", " ".join(parts)]


BEHIND_NGINX = _shell(
    "{python} -m granian --host {host} --port {backend_port} --log-level warning --no-access-log",
    "--interface wsgi testproject.wsgi:application &",
    # nginx's port is the one the harness waits for: open it only once Granian accepts
    "for i in $(seq 300); do {python} -c 'import socket; socket.create_connection((\"{host}\", {backend_port}), 1)'",
    "2>/dev/null && break; sleep 0.1; done;",
    "exec nginx -p {tmp} -c {tmp}/nginx.conf")

OURS = "manage.py granian --compress"
ZSTD5 = "manage.py granian --compress --compress-zstd-level 5"
GZIPMW = "granian wsgi + GZipMiddleware"
NGINX = "nginx gzip on -> granian wsgi"
GZIP_ROWS = (OURS, GZIPMW, NGINX)  # the level-5 row answers gzip exactly like the first one

register(Scenario(
    name="compression",
    description="testproject 40 KB HTML / 200 KB JSON compressed, 1 worker, HTTP/1.1 keep-alive",
    doc="docs/benchmarks/compression.md",
    setup=backend_port,
    servers=[
        Server(OURS, MANAGE, env=ENV, cwd=CWD, versions=["django", "zstandard", "brotli"]),
        Server(ZSTD5, [*MANAGE, "--compress-zstd-level", "5"], env=ENV, cwd=CWD),
        Server(GZIPMW, [*GRANIAN, "--interface", "wsgi", "testproject.wsgi:application"],
               env=GZIP_ENV, cwd=CWD, versions=["granian"]),
        Server(NGINX, BEHIND_NGINX, env=ENV, cwd=CWD, requires=["nginx"],
               prepare=write_nginx_conf, versions=["cmd:nginx -v"]),
    ],
    workloads=[
        Workload("html 40KB gzip", "/bench/page/", Wrk(headers=GZIP), only=GZIP_ROWS),
        Workload("json 200KB gzip", "/bench/data/", Wrk(headers=GZIP), only=GZIP_ROWS),
        Workload("html 40KB browser (ours: zstd)", "/bench/page/", Wrk(headers=BROWSER)),
        Workload("json 200KB browser (ours: zstd)", "/bench/data/", Wrk(headers=BROWSER)),
    ],
    notes="All rows answer gzip level 6 to `Accept-Encoding: gzip`; for the browser header ours answers zstd "
          "(level 3 by default, level 5 in the second row), the others gzip 6. The two views return a body "
          "rendered once (testproject/demo/views.py bench_page / bench_data), so the rows measure the server, "
          "Django's middleware and compression, not template rendering. Goal (issue 16): ≥ 1.5x the "
          "GZipMiddleware row at equal compressed size. Server CPU includes nginx and Granian in the last row.",
))
