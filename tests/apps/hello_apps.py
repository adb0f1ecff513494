"""The README's hello-world apps (examples/hello.py), importable by the test servers."""

from examples.hello import app, wsgi

__all__ = ["app", "wsgi"]
