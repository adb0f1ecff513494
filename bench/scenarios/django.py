"""django: testproject ``/api/health`` (django-ninja), 1 worker: every way of serving Django, and the ceiling."""

from bench.loadgen import Wrk
from bench.spec import GRANIAN, Scenario, Server, Workload, register

ENV = {"DJANGO_SETTINGS_MODULE": "testproject.settings", "PYTHONPATH": "{root}/testproject:{root}"}
CWD = "{root}/testproject"
GUNICORN = ["{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--workers", "1", "--log-level", "warning"]
UVICORN = ["{python}", "-m", "uvicorn", "--host", "{host}", "--port", "{port}", "--http", "httptools",
           "--loop", "uvloop", "--no-access-log", "--log-level", "warning"]

register(Scenario(
    name="django",
    description="Django testproject /api/health (django-ninja), 1 worker, HTTP/1.1 keep-alive",
    doc="docs/benchmarks/django.md",
    servers=[
        Server("manage.py granian", ["{python}", "manage.py", "granian", "--host", "{host}", "--port", "{port}",
                                     "--workers", "1", "--log-level", "warning", "--no-access-log"],
               env=ENV, cwd=CWD, versions=["django", "django-ninja"]),
        Server("granian wsgi", [*GRANIAN, "--interface", "wsgi", "testproject.wsgi:application"], env=ENV, cwd=CWD,
               versions=["granian"]),
        Server("granian asgi", [*GRANIAN, "--interface", "asgi", "testproject.asgi:application"], env=ENV, cwd=CWD),
        Server("uvicorn asgi", [*UVICORN, "testproject.asgi:application"], env=ENV, cwd=CWD,
               requires=["py:uvicorn"], versions=["uvicorn"]),
        Server("daphne asgi", ["{python}", "-m", "daphne", "-b", "{host}", "-p", "{port}", "-v", "0",
                               "testproject.asgi:application"], env=ENV, cwd=CWD, requires=["py:daphne"],
               versions=["daphne"]),
        Server("gunicorn sync", [*GUNICORN, "testproject.wsgi:application"], env=ENV, cwd=CWD,
               requires=["py:gunicorn"], versions=["gunicorn"]),
        Server("gunicorn gthread", [*GUNICORN, "--worker-class", "gthread", "--threads", "4",
                                    "testproject.wsgi:application"], env=ENV, cwd=CWD, requires=["py:gunicorn"]),
        Server("Django in-process (ceiling)", ["{python}", "ceiling.py", "--duration", "{duration}",
                                               "--path", "{path}"], env=ENV, cwd=CWD, inprocess=True),
    ],
    workloads=[Workload("GET /api/health", "/api/health", Wrk())],
    notes="The ceiling row is Django's WSGI handler called in a loop with no server (testproject/ceiling.py), "
          "pinned to the server CPU; 'ours ÷ this' < 1 there is the fraction of the ceiling we reach "
          "(goal ≥ 0.85). Goals (issue 6): ≥ 1.2x Granian WSGI, ≥ 10x the ASGI servers.",
))
