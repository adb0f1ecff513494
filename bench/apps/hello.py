"""Hello-world apps for the benchmarks: the README's examples/hello.py (ASGI, WSGI, RSGI)."""

from examples.hello import BODY, app, rsgi, wsgi

__all__ = ["BODY", "app", "rsgi", "wsgi"]
