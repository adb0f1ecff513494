"""rsgi: the hello app over RSGI on django-granian vs Granian RSGI, and vs django-granian's own ASGI."""

from bench.loadgen import Wrk
from bench.spec import DJANGO_GRANIAN, GRANIAN, Scenario, Server, Workload, register

register(Scenario(
    name="rsgi",
    description="hello-world app over RSGI, 1 worker, HTTP/1.1 keep-alive",
    doc="docs/benchmarks/rsgi.md",
    servers=[
        Server("django-granian rsgi", [*DJANGO_GRANIAN, "--interface", "rsgi", "bench.apps.hello:rsgi"]),
        Server("granian rsgi", [*GRANIAN, "--interface", "rsgi", "bench.apps.hello:rsgi"], versions=["granian"]),
        Server("django-granian asgi", [*DJANGO_GRANIAN, "--interface", "asgi", "bench.apps.hello:app"]),
    ],
    workloads=[Workload("GET /", "/", Wrk())],
))
