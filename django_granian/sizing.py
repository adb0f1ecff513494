"""Worker sizing from the machine: ``--workers auto`` and the Django integration's defaults.

A leaf module (it imports none of the package): ``config.py`` resolves ``--workers auto`` with it.

The rule: one worker per CPU this process may use, capped so that every worker has a memory budget
(256 MiB by default) out of the memory currently available, and at least one worker.

- "CPUs we may use" is the smallest of the scheduler affinity mask (``taskset``, cpusets) and the
  cgroup CPU quota (``docker --cpus``, Kubernetes CPU limits; cgroup v2 ``cpu.max`` or v1
  ``cpu.cfs_quota_us``), rounded up.
- "available memory" is psutil's ``virtual_memory().available``, further limited by the cgroup
  memory limit (``memory.max``) when there is one.

Each worker is a full Python process running the whole app, so on an asyncio server one worker per
core saturates the CPU; more workers only add memory and context switches (WSGI apps get their
concurrency from the per-worker thread pool instead).
"""

from __future__ import annotations

import math
import os

WORKER_MEMORY_MIB = 256  # a conservative budget per worker process


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the cgroup CPU quota, or None when unlimited / not in a cgroup."""
    text = _read("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
    if text:
        quota, _, period = text.partition(" ")
        if quota != "max" and period:
            try:
                return int(quota) / int(period)
            except (ValueError, ZeroDivisionError):
                return None
        return None
    v1_quota = _read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")  # cgroup v1: -1 means unlimited
    v1_period = _read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
    try:
        cfs_quota, cfs_period = int(v1_quota or -1), int(v1_period or 0)
    except ValueError:
        return None
    return cfs_quota / cfs_period if cfs_quota > 0 and cfs_period > 0 else None


def cpu_count() -> int:
    try:
        cpus = len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return cpus


def available_memory_mib() -> int | None:
    """Memory available for new workers (MiB), or None when it cannot be determined."""
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        return None
    limit_text = _read("/sys/fs/cgroup/memory.max")
    usage_text = _read("/sys/fs/cgroup/memory.current")
    if limit_text and limit_text != "max" and usage_text:
        try:
            available = min(available, int(limit_text) - int(usage_text))
        except ValueError:
            pass
    return max(0, available // (1024 * 1024))


def auto_workers(memory_per_worker_mib: int = WORKER_MEMORY_MIB) -> int:
    """One worker per usable CPU, capped by available memory / a per-worker budget (at least 1)."""
    cpus = cpu_count()
    available = available_memory_mib()
    by_memory = cpus if available is None else max(1, available // memory_per_worker_mib)
    return max(1, min(cpus, by_memory))
