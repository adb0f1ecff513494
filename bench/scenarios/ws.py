"""ws: WebSocket echo round trips (messages/s), 1 worker, with the raw client bench/wsclient.py."""

from bench.loadgen import WsEcho
from bench.spec import DJANGO_GRANIAN, GRANIAN, Scenario, Server, Workload, register

APP = "bench.apps.ws_echo:app"

register(Scenario(
    name="ws",
    description="WebSocket echo, 16-byte text messages, 1 worker",
    doc="docs/benchmarks/websockets.md",
    servers=[
        Server("django-granian", [*DJANGO_GRANIAN, "--interface", "asgi", APP]),
        Server("granian", [*GRANIAN, "--interface", "asgi", APP], versions=["granian"]),
        Server("uvicorn (websockets)",
               ["{python}", "-m", "uvicorn", "--host", "{host}", "--port", "{port}", "--http", "httptools",
                "--loop", "uvloop", "--ws", "websockets", "--no-access-log", "--log-level", "warning", APP],
               requires=["py:uvicorn", "py:websockets"], versions=["uvicorn", "websockets"]),
    ],
    workloads=[Workload("echo 16B", "/", WsEcho(size=16))],
    notes="Each connection keeps one message in flight; messages/s = echoes received per second. "
          "Goal (issue 4): django-granian ≥ Granian.",
))
