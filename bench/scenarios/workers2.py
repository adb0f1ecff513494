"""workers2: the hello app with 2 worker processes (issue 3). Both CPUs serve, so nothing is pinned apart."""

from bench.loadgen import Wrk
from bench.spec import DJANGO_GRANIAN, GRANIAN, Scenario, Server, Workload, register

APP = "bench.apps.hello:app"

register(Scenario(
    name="workers2",
    description="hello-world ASGI app, --workers 2, HTTP/1.1 keep-alive",
    doc="docs/benchmarks/workers.md",
    servers=[
        Server("django-granian --workers 2", [*DJANGO_GRANIAN, "--interface", "asgi", "--workers", "2", APP]),
        Server("granian --workers 2", [*GRANIAN, "--interface", "asgi", "--workers", "2", APP],
               versions=["granian"]),
    ],
    workloads=[Workload("GET /", "/", Wrk())],
    # Two workers need both cores of a 2-core machine: server and wrk share CPUs 0-1 (not pinned apart).
    server_cpus="0-1",
    client_cpus="0-1",
    notes="Server and load generator share both CPUs here (2 workers on a 2-core machine), so absolute numbers "
          "include wrk's own CPU use; compare the ratio.",
))
