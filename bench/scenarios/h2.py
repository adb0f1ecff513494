"""h2: HTTP/2 (prior knowledge, cleartext) with h2load, hello app, 1 worker (issue 4)."""

from bench.loadgen import H2Load
from bench.spec import DJANGO_GRANIAN, GRANIAN, Scenario, Server, Workload, register

APP = "bench.apps.hello:app"

register(Scenario(
    name="h2",
    description="hello-world ASGI app over HTTP/2 (h2c prior knowledge), 1 worker",
    doc="docs/benchmarks/http2.md",
    servers=[
        Server("django-granian --http 2", [*DJANGO_GRANIAN, "--interface", "asgi", "--http", "2", APP]),
        Server("granian --http 2", [*GRANIAN, "--interface", "asgi", "--http", "2", APP], versions=["granian"]),
        Server("hypercorn", ["{python}", "-m", "hypercorn", "--bind", "{host}:{port}", "--workers", "1",
                             "--log-level", "warning", "--config", "python:bench.apps.hypercorn_unlimited", APP],
               requires=["py:hypercorn"], versions=["hypercorn", "h2"]),
    ],
    workloads=[Workload("GET / h2", "/", H2Load(clients=16, streams=10))],
    notes="h2load reports no latency percentiles: the p50 column is h2load's mean time per request. "
          "Goal (issue 4): ≥ 10x hypercorn with 0 failed requests, as close to Granian as possible.",
))
