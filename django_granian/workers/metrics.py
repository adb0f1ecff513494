"""Prometheus metrics across worker processes (``--metrics``).

prometheus_client's multiprocess mode: every process writes its samples to memory-mapped files in
``PROMETHEUS_MULTIPROC_DIR`` (a temporary directory the supervisor creates and removes), and a small
exporter process (forked by the supervisor) merges them on each scrape.

The request path never touches prometheus_client: :class:`WorkerMetrics` is the ``state.metrics``
hook object and only bumps plain ints (a dict increment per response, a bisect for the latency
bucket). Every ``--metrics-scrape-interval`` seconds, and once more when the worker stops, the
deltas are flushed into the shared files.

Metric names (``worker`` is the worker slot, 1..N, stable across respawns):

- ``django_granian_requests_total{worker}``            requests dispatched to the app/static engine
- ``django_granian_responses_total{worker,status}``     responses completed, by status code
- ``django_granian_request_duration_seconds{worker}``  histogram, request head parsed -> response done
- ``django_granian_connections_open{worker}``          open client connections (live workers only)
- ``django_granian_connections_total{worker}``         accepted connections
- ``django_granian_worker_rss_bytes{worker}``          resident memory, sampled by the supervisor
- ``django_granian_workers``                           live worker processes
- ``django_granian_worker_respawns_total{reason}``     crash, lifetime, max-requests, max-rss, reload, signal
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
from bisect import bisect_left
from time import perf_counter
from typing import Any

from ..config import Config, ConfigError

logger = logging.getLogger("django_granian")

ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PREFIX = "django_granian_"


def check_available() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError("--metrics needs prometheus_client (pip install django-granian[metrics])") from None


class MultiprocDir:
    """The directory the processes share; created before prometheus_client is imported anywhere."""

    def __init__(self) -> None:
        existing = os.environ.get(ENV)
        self.owned = not existing
        if existing:
            os.makedirs(existing, exist_ok=True)
            self.path = existing
        else:
            self.path = tempfile.mkdtemp(prefix="django-granian-metrics-")
            os.environ[ENV] = self.path
        import prometheus_client.values as values

        # prometheus_client picks its value class when first imported; make sure it is the mmap one.
        values.ValueClass = values.get_value_class()

    def process_dead(self, pid: int) -> None:
        from prometheus_client import multiprocess

        try:
            multiprocess.mark_process_dead(pid, self.path)
        except OSError:  # pragma: no cover
            pass

    def cleanup(self) -> None:
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)
            if os.environ.get(ENV) == self.path:
                del os.environ[ENV]


def bind_endpoint(config: Config) -> socket.socket:
    """Bind the exporter's socket in the supervisor so a busy port is a clear start-up error."""
    host = config.metrics_address.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, config.metrics_port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--metrics-port: cannot bind the metrics endpoint to {host}:{config.metrics_port}: "
                          f"{exc.strerror or exc}") from None
    return sock


def complete_files(path: str) -> list[str]:
    """The sample files in ``path`` that can be read: a process creates its file empty and then sizes it,
    and a scrape that reads it in between fails (``struct.error``: prometheus_client 0.26 reads the
    header's first 4 bytes), answering 500 for the whole exposition. Such a file holds no sample yet."""
    files = []
    for name in os.listdir(path):
        if name.endswith(".db"):
            full = os.path.join(path, name)
            try:
                if os.path.getsize(full) >= 8:  # the header: used bytes (4) and padding (4)
                    files.append(full)
            except FileNotFoundError:  # a live gauge's file removed for a dead process
                pass
    return files


def serve_endpoint(sock: socket.socket) -> None:
    """Exporter process main: answer scrapes with the merged samples until SIGTERM."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    from prometheus_client import CollectorRegistry, make_wsgi_app, multiprocess

    class Collector(multiprocess.MultiProcessCollector):
        """prometheus_client's collector without the files a process is creating at this moment."""

        def collect(self) -> Any:
            return self.merge(complete_files(self._path), accumulate=True)

    registry = CollectorRegistry()
    Collector(registry)
    app = make_wsgi_app(registry)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = WSGIServer(sock.getsockname()[:2], QuietHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()[:2]
    server.server_name = "metrics"
    server.server_port = sock.getsockname()[1]
    server.setup_environ()
    server.set_app(app)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()


class SupervisorMetrics:
    """Samples the supervisor records itself: respawns, worker count, worker RSS."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge

        self.respawns = Counter(PREFIX + "worker_respawns", "Workers replaced, by reason", ["reason"])
        self.workers = Gauge(PREFIX + "workers", "Live worker processes", multiprocess_mode="mostrecent")
        self.rss = Gauge(PREFIX + "worker_rss_bytes", "Worker resident memory (bytes)", ["worker"],
                         multiprocess_mode="mostrecent")

    def respawn(self, reason: str) -> None:
        self.respawns.labels(reason=reason).inc()

    def set_workers(self, count: int) -> None:
        self.workers.set(count)

    def set_rss(self, slot: int, rss: int) -> None:
        self.rss.labels(worker=str(slot)).set(rss)


class WorkerMetrics:
    """The ``state.metrics`` hook object of one worker: plain counters, flushed periodically."""

    __slots__ = ("slot", "open", "opened", "statuses", "buckets", "latency_sum", "_sent", "_families")

    def __init__(self, slot: int) -> None:
        self.slot = str(slot)
        self.open = 0
        self.opened = 0
        self.statuses: dict[int, int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0
        self._sent: dict[Any, float] = {}
        self._families: Any = None

    # -- hot path (called by the connections) -------------------------------------------------------
    def connection_opened(self) -> None:
        self.open += 1
        self.opened += 1

    def connection_closed(self) -> None:
        self.open -= 1

    def response(self, status: int, t0: float = 0.0) -> None:
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        if t0:
            elapsed = perf_counter() - t0
            self.buckets[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
            self.latency_sum += elapsed

    # -- periodic flush ---------------------------------------------------------------------------
    def _create(self) -> Any:
        from prometheus_client import Counter, Gauge, Histogram

        return (
            Counter(PREFIX + "requests", "Requests served", ["worker"]),
            Counter(PREFIX + "responses", "Responses by status code", ["worker", "status"]),
            Histogram(PREFIX + "request_duration_seconds", "Request duration (head parsed to response done)",
                      ["worker"], buckets=LATENCY_BUCKETS),
            Gauge(PREFIX + "connections_open", "Open client connections", ["worker"], multiprocess_mode="livesum"),
            Counter(PREFIX + "connections", "Accepted client connections", ["worker"]),
        )

    def flush(self, requests: int) -> None:
        """Push what changed since the last flush into the shared files (``requests``: state.requests)."""
        if self._families is None:
            self._families = self._create()
        req_c, resp_c, hist, open_g, conn_c = self._families
        slot, sent = self.slot, self._sent
        self._add(req_c.labels(worker=slot), ("req",), requests)
        self._add(conn_c.labels(worker=slot), ("conn",), self.opened)
        for status, count in list(self.statuses.items()):
            self._add(resp_c.labels(worker=slot, status=str(status)), ("status", status), count)
        child = hist.labels(worker=slot)
        for i, count in enumerate(self.buckets):
            key = ("bucket", i)
            delta = count - sent.get(key, 0)
            if delta:
                child._buckets[i].inc(delta)
                sent[key] = count
        delta = self.latency_sum - sent.get("sum", 0.0)
        if delta:
            child._sum.inc(delta)
            sent["sum"] = self.latency_sum
        open_g.labels(worker=slot).set(max(0, self.open))

    def _add(self, metric: Any, key: Any, total: float) -> None:
        delta = total - self._sent.get(key, 0)
        if delta > 0:
            metric.inc(delta)
            self._sent[key] = total
