"""static: a 24 KB CSS file and a 1 MB file, 1 worker: server-level static serving vs whitenoise vs nginx."""

from __future__ import annotations

import os
from pathlib import Path

from bench.loadgen import Wrk
from bench.spec import DJANGO_GRANIAN, GRANIAN, Scenario, Server, Workload, register

HELLO = "bench.apps.hello:app"
CSS_SIZE = 24 * 1024
BIG_SIZE = 1024 * 1024


def make_files(tmp: Path) -> dict[str, str]:
    """``{tmp}/static/app.css`` (24 KB of CSS) and ``{tmp}/static/big.bin`` (1 MB), readable by nginx workers."""
    static = tmp / "static"
    static.mkdir()
    rule = b".c%05d { color: #%06x; margin: 0 auto; padding: 1px 2px; }\n"
    css = bytearray()
    i = 0
    while len(css) < CSS_SIZE:
        css += rule % (i, (i * 2654435761) & 0xFFFFFF)
        i += 1
    (static / "app.css").write_bytes(bytes(css[:CSS_SIZE]))
    (static / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    for p in (tmp, static):  # TemporaryDirectory is 0700; nginx workers may run as another user
        p.chmod(0o755)
    for f in static.iterdir():
        f.chmod(0o644)
    return {"static_dir": str(static)}


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    {types}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen {host}:{port};
        location /static/ {{ alias {static_dir}/; etag on; }}
    }}
}}
"""


def write_nginx_conf(ctx: dict[str, str]) -> None:
    mime = "/etc/nginx/mime.types"
    types = f"include {mime};" if os.path.exists(mime) else "types { text/css css; }"
    Path(ctx["tmp"], "nginx.conf").write_text(NGINX_CONF.format(types=types, **ctx))


STATIC = ["--static-path-route", "/static", "--static-path-mount", "{static_dir}"]
WHITENOISE_ENV = {"BENCH_STATIC_DIR": "{static_dir}"}

register(Scenario(
    name="static",
    description="static files (24 KB CSS, 1 MB binary), 1 worker, HTTP/1.1 keep-alive",
    doc="docs/benchmarks/static.md",
    setup=make_files,
    servers=[
        Server("django-granian static", [*DJANGO_GRANIAN, "--interface", "asgi", *STATIC, HELLO]),
        Server("granian static", [*GRANIAN, "--interface", "asgi", *STATIC, HELLO], versions=["granian"]),
        Server("whitenoise on django-granian wsgi",
               [*DJANGO_GRANIAN, "--interface", "wsgi", "bench.apps.static_wsgi:app"], env=WHITENOISE_ENV,
               versions=["whitenoise"]),
        Server("whitenoise on gunicorn gthread",
               ["{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--workers", "1", "--worker-class",
                "gthread", "--threads", "4", "--log-level", "warning", "bench.apps.static_wsgi:app"],
               env=WHITENOISE_ENV, requires=["py:gunicorn"], versions=["gunicorn", "whitenoise"]),
        Server("nginx (ceiling)", ["nginx", "-p", "{tmp}", "-c", "{tmp}/nginx.conf"], requires=["nginx"],
               prepare=write_nginx_conf, versions=["cmd:nginx -v"]),
    ],
    workloads=[
        Workload("css 24KB", "/static/app.css", Wrk()),
        Workload("file 1MB", "/static/big.bin", Wrk()),
    ],
    notes="nginx runs with 1 worker process, sendfile on, access log off: the ceiling, not a peer. "
          "Goal (issue 5): django-granian ≥ 1.2x Granian's static serving.",
))
