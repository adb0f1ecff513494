"""What the supervisor knows about one worker process (:class:`WorkerHandle`) and its states."""

from __future__ import annotations

import socket

STARTING, RUNNING, STOPPING = "starting", "running", "stopping"


class WorkerHandle:
    __slots__ = ("pid", "slot", "chan", "generation", "state", "spawned", "ready_at", "kill_at", "successor",
                 "predecessor", "replace_reason", "retry_at", "rss_over", "error", "buf", "reason")

    def __init__(self, pid: int, slot: int, chan: socket.socket, generation: int, now: float) -> None:
        self.pid = pid
        self.slot = slot
        self.chan = chan  # the worker's end of a socketpair: ready / max-requests / error lines, EOF = gone
        self.generation = generation
        self.state = STARTING
        self.spawned = now
        self.ready_at = 0.0
        self.kill_at = 0.0
        self.successor: WorkerHandle | None = None  # being started to replace this one
        self.predecessor: WorkerHandle | None = None  # the one this replaces once it is ready
        self.replace_reason: str | None = None  # set by recycling: lifetime, max-rss, max-requests
        self.retry_at = 0.0
        self.rss_over = 0
        self.error = ""
        self.buf = b""
        self.reason = ""  # why this worker was started (respawn reason for metrics)

    @property
    def name(self) -> str:
        return f"worker-{self.slot} (pid {self.pid})"
