"""h3: HTTP/3 (QUIC) with bench/h3load.py, hello app and a 24 KB static file, 1 worker (issue 17)."""

from __future__ import annotations

from pathlib import Path

from bench.loadgen import H3Load
from bench.scenarios.static import make_files
from bench.spec import DJANGO_GRANIAN, Scenario, Server, Workload, register

HELLO = "bench.apps.hello:app"


def setup(tmp: Path) -> dict[str, str]:
    """The static scenario's files plus a certificate for 127.0.0.1/localhost (trustme, as the tests do)."""
    import trustme

    ctx = make_files(tmp)
    cert = trustme.CA().issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    return {**ctx, "cert": str(tmp / "cert.pem"), "key": str(tmp / "key.pem")}


TLS = ["--ssl-certificate", "{cert}", "--ssl-keyfile", "{key}"]
OURS = [*DJANGO_GRANIAN, "--interface", "asgi", "--http3", *TLS]


def hypercorn(app: str) -> list[str]:
    return ["{python}", "-m", "hypercorn", "--bind", "{host}:{port}", "--quic-bind", "{host}:{port}", "--certfile",
            "{cert}", "--keyfile", "{key}", "--workers", "0", "--log-level", "warning", "--config",
            "python:bench.apps.hypercorn_unlimited", app]


register(Scenario(
    name="h3",
    description="HTTP/3 (QUIC, aioquic in both servers): hello app and a 24 KB static file, 1 worker",
    doc="docs/benchmarks/http3.md",
    setup=setup,
    servers=[
        Server("django-granian --http3", [*OURS, "--static-path-route", "/static", "--static-path-mount",
                                          "{static_dir}", HELLO], group="hello", versions=["aioquic"]),
        Server("hypercorn (h3)", hypercorn(HELLO), group="hello", requires=["py:hypercorn"],
               versions=["hypercorn", "aioquic"]),
        Server("django-granian --http3 static", [*OURS, "--static-path-route", "/static", "--static-path-mount",
                                                 "{static_dir}", HELLO], group="static"),
        Server("whitenoise on hypercorn (h3)", hypercorn("bench.apps.static_wsgi:app"), group="static",
               env={"BENCH_STATIC_DIR": "{static_dir}"}, requires=["py:hypercorn"], versions=["whitenoise"]),
    ],
    workloads=[
        Workload("GET / h3", "/", H3Load(connections=4, streams=16),
                 only=["django-granian --http3", "hypercorn (h3)"]),
        Workload("css 24KB h3", "/static/app.css", H3Load(connections=4, streams=16),
                 only=["django-granian --http3 static", "whitenoise on hypercorn (h3)"]),
    ],
    notes="Both servers run aioquic for QUIC and QPACK; what differs is everything around it. The load generator "
          "is Python (aioquic) too and may be the limit: `load CPU` near 100% means it was, and `per server "
          "CPU-s` (requests per second of the server's own CPU) is then the comparable figure. Hypercorn has no "
          "static file engine: its row serves the file with whitenoise (WSGI), as a hypercorn user would. "
          "Goal (issue 17): ≥ 2x hypercorn.",
))
