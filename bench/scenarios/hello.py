"""hello: the 13-byte hello-world app, 1 worker, HTTP/1.1 keep-alive (issue 2's goal scenario)."""

from bench.loadgen import Wrk
from bench.spec import DJANGO_GRANIAN, GRANIAN, Scenario, Server, Workload, register

ASGI_APP = "bench.apps.hello:app"
WSGI_APP = "bench.apps.hello:wsgi"

register(Scenario(
    name="hello",
    description="hello-world app, 1 worker, HTTP/1.1 keep-alive (ASGI peers; WSGI pair)",
    doc="docs/benchmarks/hello.md",
    servers=[
        Server("django-granian", [*DJANGO_GRANIAN, "--interface", "asgi", ASGI_APP], group="asgi"),
        Server("granian", [*GRANIAN, "--interface", "asgi", ASGI_APP], group="asgi", versions=["granian"]),
        Server("uvicorn (httptools, uvloop)",
               ["{python}", "-m", "uvicorn", "--host", "{host}", "--port", "{port}", "--http", "httptools",
                "--loop", "uvloop", "--no-access-log", "--log-level", "warning", ASGI_APP],
               group="asgi", requires=["py:uvicorn", "py:httptools"], versions=["uvicorn", "httptools", "uvloop"]),
        Server("hypercorn", ["{python}", "-m", "hypercorn", "--bind", "{host}:{port}", "--workers", "1",
                             "--log-level", "warning", ASGI_APP],
               group="asgi", requires=["py:hypercorn"], versions=["hypercorn"]),
        Server("django-granian wsgi", [*DJANGO_GRANIAN, "--interface", "wsgi", WSGI_APP], group="wsgi"),
        Server("granian wsgi", [*GRANIAN, "--interface", "wsgi", WSGI_APP], group="wsgi", versions=["granian"]),
    ],
    workloads=[Workload("GET /", "/", Wrk())],
    notes="Goal (issue 2): django-granian ≥ 1.0x Granian and ≥ 2.5x uvicorn (httptools) in the same run.",
))
