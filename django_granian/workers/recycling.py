"""Recycling: when a running worker is due for a replacement, and why.

- ``--workers-lifetime``: it has been ready for that many seconds;
- ``--workers-max-rss``: its resident memory (psutil, sampled every ``rss_sample_interval``) stayed
  over the limit for ``rss_samples`` samples in a row; with ``--metrics`` every worker's RSS is also
  sampled for the ``django_granian_worker_rss_bytes`` gauge;
- ``--workers-max-requests``: the worker itself says so (``M`` on its channel, see ``worker.py``).

A due worker only gets ``replace_reason`` set here; the supervisor starts its successor (one slot
at a time) and stops it once the successor accepts connections.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

from ..config import Config
from .handle import RUNNING, WorkerHandle

logger = logging.getLogger("django_granian")


class Recycler:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.next_sample = 0.0
        self.metrics: Any = None  # SupervisorMetrics, when --metrics is on

    @property
    def samples_rss(self) -> bool:
        return bool(self.config.workers_max_rss) or self.metrics is not None

    def check(self, workers: Iterable[WorkerHandle], now: float) -> None:
        """Mark the workers that are due (lifetime now; RSS when a sample is due)."""
        config = self.config
        workers = list(workers)
        if config.workers_lifetime:
            for w in workers:
                if (w.state == RUNNING and w.replace_reason is None
                        and now - w.ready_at >= config.workers_lifetime):
                    w.replace_reason = "lifetime"
        if config.workers_max_rss and now >= self.next_sample:
            self.next_sample = now + config.rss_sample_interval
            self.sample_rss(workers)
        elif self.metrics is not None and now >= self.next_sample:
            self.next_sample = now + min(config.rss_sample_interval, config.metrics_scrape_interval)
            self.sample_rss(workers)

    def max_requests_reached(self, w: WorkerHandle) -> None:
        if w.replace_reason is None:
            w.replace_reason = "max-requests"

    def sample_rss(self, workers: Iterable[WorkerHandle]) -> None:
        import psutil

        limit = (self.config.workers_max_rss or 0) * 1024 * 1024
        for w in workers:
            if w.state != RUNNING:
                continue
            try:
                rss = psutil.Process(w.pid).memory_info().rss
            except (psutil.Error, OSError):
                continue
            if self.metrics is not None:
                self.metrics.set_rss(w.slot, rss)
            if not limit:
                continue
            if rss > limit:
                w.rss_over += 1
                if w.rss_over >= self.config.rss_samples and w.replace_reason is None:
                    logger.warning("%s uses %d MiB (limit %d MiB): replacing it", w.name, rss // 2**20,
                                   self.config.workers_max_rss)
                    w.replace_reason = "max-rss"
            else:
                w.rss_over = 0
