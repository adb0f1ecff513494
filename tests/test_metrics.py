"""``--metrics``: the Prometheus endpoint merges every worker's samples and counts correctly."""

from __future__ import annotations

import glob
import os
import signal
import tempfile
import time
from typing import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, start_server
from tests.core_client import wait_until

pytestmark = pytest.mark.timeout(90)

APP = ["--interface", "asgi", "workers_app:app"]


Samples = dict[str, dict[tuple, float]]


def scrape(port: int) -> Samples:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(samples: dict[str, dict[tuple, float]], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for k, v in samples.get(name, {}).items() if want <= set(k))


def metrics_where(port: int, cond: Callable[[Samples], bool]) -> Callable[[], Samples | None]:
    """A check for wait_until: the scrape of ``port``'s /metrics once ``cond`` holds for it."""

    def check() -> Samples | None:
        try:
            samples = scrape(port)
        except httpx.HTTPError:
            return None
        return samples if cond(samples) else None

    return check


def test_metrics_count_requests_across_workers(tmp_path):
    mport = free_port()
    args = [*APP, "--workers", "2", "--metrics", "--metrics-port", str(mport), "--metrics-scrape-interval", "1"]
    before = _metrics_dirs()
    with start_server(args, tmp_path=tmp_path) as srv:
        wait_until(metrics_where(mport, lambda m: total(m, "django_granian_workers") == 2), 30)
        for _ in range(10):
            assert httpx.get(srv.url).status_code == 200
        with httpx.Client() as client:
            for _ in range(3):
                assert client.get(srv.url + "/status/404").status_code == 404
            assert client.get(srv.url + "/slow?t=0.06").status_code == 200
        m = wait_until(metrics_where(mport, lambda m: total(m, "django_granian_requests_total") == 14
                                     and total(m, "django_granian_request_duration_seconds_count") == 14), 30)
        assert total(m, "django_granian_responses_total", status="200") == 11
        assert total(m, "django_granian_responses_total", status="404") == 3
        # 10 + one keep-alive client + the fixture's readiness probe
        assert total(m, "django_granian_connections_total") == 12
        # the slow request lands above the 50 ms bucket, the others well below it
        assert total(m, "django_granian_request_duration_seconds_bucket", le="0.05") == 13
        assert total(m, "django_granian_request_duration_seconds_bucket", le="0.1") == 14
        assert total(m, "django_granian_request_duration_seconds_sum") >= 0.06
        workers = {dict(k)["worker"] for k in m["django_granian_worker_rss_bytes"]}
        assert workers == {"1", "2"}
        assert all(v > 10 * 2**20 for v in m["django_granian_worker_rss_bytes"].values())
        assert total(m, "django_granian_connections_open") == 0
        created = _metrics_dirs() - before
        assert created, "the supervisor made a PROMETHEUS_MULTIPROC_DIR"
        # a process creating its sample file (empty until sized) at the moment of a scrape: the scrape is
        # still whole (prometheus_client alone answers 500 "A server error occurred" for the whole page)
        being_created = os.path.join(next(iter(created)), "counter_999999.db")
        open(being_created, "wb").close()
        r = httpx.get(f"http://127.0.0.1:{mport}/metrics", timeout=5)
        assert r.status_code == 200, r.text
        assert total(scrape(mport), "django_granian_requests_total") == 14
        os.unlink(being_created)
        assert srv.stop() == 0
    assert not any(os.path.exists(d) for d in created)  # ...and removed it


def test_http2_responses_have_a_latency_like_http1(tmp_path):
    """An HTTP/2 response lands in the latency histogram too (it used to be counted without a start
    time: responses_total went up, request_duration_seconds never saw it)."""
    mport = free_port()
    args = [*APP, "--http", "2", "--metrics", "--metrics-port", str(mport), "--metrics-scrape-interval", "1"]
    with start_server(args, tmp_path=tmp_path) as srv:
        with httpx.Client(http1=False, http2=True, timeout=10) as client:  # prior knowledge, one connection
            for path in ("/", "/", "/slow?t=0.06"):
                response = client.get(srv.url + path)
                assert (response.http_version, response.status_code) == ("HTTP/2", 200)
        m = wait_until(metrics_where(mport, lambda m: total(m, "django_granian_responses_total") == 3
                                     and total(m, "django_granian_request_duration_seconds_count") == 3), 30)
        assert total(m, "django_granian_request_duration_seconds_bucket", le="0.05") == 2
        assert total(m, "django_granian_request_duration_seconds_bucket", le="0.1") == 3
        assert total(m, "django_granian_request_duration_seconds_sum") >= 0.06


def _metrics_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "django-granian-metrics-*")))


def test_metrics_count_respawns_and_keep_counts_of_dead_workers(tmp_path):
    mport = free_port()
    args = [*APP, "--workers", "1", "--metrics", "--metrics-port", str(mport), "--metrics-scrape-interval", "1",
            "--respawn-failed-workers", "--respawn-interval", "0.1"]
    with start_server(args, tmp_path=tmp_path) as srv:
        m = wait_until(metrics_where(mport, lambda m: total(m, "django_granian_workers") == 1), 30)
        for _ in range(5):
            httpx.get(srv.url)
        wait_until(metrics_where(mport, lambda m: total(m, "django_granian_requests_total") == 5), 30)
        worker = int(httpx.get(srv.url).text)  # the 6th request is flushed when the worker stops
        os.kill(worker, signal.SIGTERM)  # a worker stopping on its own counts as a crash here
        m = wait_until(metrics_where(mport, lambda m: total(m, "django_granian_worker_respawns_total",
                                                            reason="crash") == 1), 30)
        assert total(m, "django_granian_requests_total") == 6
        httpx.get(srv.url)
        wait_until(metrics_where(mport, lambda m: total(m, "django_granian_requests_total") == 7), 30)


def test_worker_metrics_unit():
    from django_granian.workers.metrics import LATENCY_BUCKETS, WorkerMetrics

    wm = WorkerMetrics(1)
    for status in (200, 200, 404):
        wm.response(status)
    assert wm.statuses == {200: 2, 404: 1}
    assert sum(wm.buckets) == 0  # no start time: no latency sample
    now = time.perf_counter()
    wm.response(200, now - 0.003)  # 3 ms -> the 5 ms bucket
    assert wm.buckets[LATENCY_BUCKETS.index(0.005)] == 1
    wm.response(500, now - 100)  # beyond the largest bound -> +Inf
    assert wm.buckets[-1] == 1
    wm.connection_opened()
    wm.connection_opened()
    wm.connection_closed()
    assert (wm.open, wm.opened) == (1, 2)
