"""Worker sizing from the machine: ``--workers auto`` and the Django integration's defaults."""

from __future__ import annotations

import os

WORKER_MEMORY_MIB = 256  # a conservative budget per worker process


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def auto_workers(memory_per_worker_mib: int = WORKER_MEMORY_MIB) -> int:
    """One worker per usable CPU, capped by available memory / a per-worker budget (at least 1)."""
    cpus = cpu_count()
    try:
        import psutil

        available_mib = psutil.virtual_memory().available // (1024 * 1024)
        by_memory = max(1, int(available_mib // memory_per_worker_mib))
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        by_memory = cpus
    return max(1, min(cpus, by_memory))
