"""The WebSocket echo app of the benchmarks (bench/apps/ws_echo.py), importable as ``ws_echo:app`` by the
test servers and by bench/ws_client.py."""

from bench.apps.ws_echo import app

__all__ = ["app"]
