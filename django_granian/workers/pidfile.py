"""``--pid-file``: the supervisor's PID, written at start and removed at exit (only if still ours)."""

from __future__ import annotations

import os

from ..config import ConfigError


class PidFile:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.written = False

    def check(self) -> None:
        """Everything that can be wrong with the path, reported before anything starts."""
        if not self.path:
            return
        path = os.path.abspath(self.path)
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            raise ConfigError(f"--pid-file {self.path!r}: directory {directory!r} does not exist")
        if os.path.isdir(path):
            raise ConfigError(f"--pid-file {self.path!r} is a directory")
        if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise ConfigError(f"--pid-file {self.path!r}: not writable")

    def write(self) -> None:
        if not self.path:
            return
        try:
            with open(self.path, "w") as fh:
                fh.write(f"{os.getpid()}\n")
        except OSError as exc:
            raise ConfigError(f"--pid-file {self.path!r}: cannot write it ({exc.strerror or exc})") from None
        self.written = True

    def remove(self) -> None:
        if not (self.written and self.path):
            return
        try:
            with open(self.path) as fh:
                if fh.read().strip() == str(os.getpid()):
                    os.unlink(self.path)
        except OSError:
            pass
