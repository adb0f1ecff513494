"""Multi-process serving: the supervisor, its workers, reload and metrics (worker sizing is ``sizing.py``)."""

from __future__ import annotations

import os

from ..config import Config


def needs_supervisor(config: Config) -> bool:
    """True when the options need a supervising process (even with one worker)."""
    return bool(
        config.workers > 1 or config.reload or config.metrics or config.respawn_failed_workers
        or config.workers_lifetime or config.workers_max_requests or config.workers_max_rss
        or config.pid_file or config.acme_domain or (os.environ.get("LISTEN_FDS") and config.fd is None)
    )
