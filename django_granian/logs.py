"""Logging setup and the access log (Granian's format atoms plus ``size`` and ``header{name}``)."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import time
from typing import Any, Callable, Mapping

from .config import Config

logger = logging.getLogger("django_granian")
access_logger = logging.getLogger("django_granian.access")

_LEVELS = {"warn": "WARNING", "notset": "NOTSET"}
FATAL_PREFIX = "Error: "

# Where fatal() reports: None means stderr. A supervised worker sets it, so that its start-up error
# reaches the supervisor, which prints it once ("Error: worker-1 (pid N) failed to start: ...").
_fatal_sink: Callable[[str], None] | None = None
_custom_logging = False  # --log-config is installed: fatal errors go to its handlers as well


def set_fatal_sink(sink: Callable[[str], None] | None) -> None:
    global _fatal_sink
    _fatal_sink = sink


def fatal(message: str) -> None:
    """Report an error that stops the server (bad option, config file, app import, lifespan startup,
    TLS files, port in use...): one line ``Error: message`` on stderr, whatever --log/--log-level
    say. With --log-config the record also goes to the configured handlers (level CRITICAL)."""
    if _fatal_sink is not None:
        _fatal_sink(message)
        return
    try:
        sys.stderr.write(f"{FATAL_PREFIX}{message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # pragma: no cover - stderr closed
        pass
    if _custom_logging:
        logger.critical("%s", message)


def setup_logging(config: Config) -> None:
    global _custom_logging
    _custom_logging = bool(config.log_config)
    if config.log_config:
        with open(config.log_config) as fh:
            logging.config.dictConfig(json.load(fh))
        return
    root = logging.getLogger("django_granian")
    level = _LEVELS.get(config.log_level, config.log_level.upper())
    if not config.log:
        root.handlers[:] = [logging.NullHandler()]
        root.propagate = False
        root.setLevel(logging.CRITICAL + 1)
        return
    if not any(getattr(h, "_django_granian", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
        handler._django_granian = True  # type: ignore[attr-defined]
        root.handlers[:] = [handler]
        access = logging.StreamHandler(sys.stdout)
        access.setFormatter(logging.Formatter("%(message)s"))
        access._django_granian = True  # type: ignore[attr-defined]
        access_logger.handlers[:] = [access]
        access_logger.propagate = False
    root.setLevel(level)
    root.propagate = False
    access_logger.setLevel(logging.INFO)


_ESCAPES = {i: f"\\x{i:02x}" for i in [*range(0x20), *range(0x7F, 0xA0)]}  # C0, DEL and C1 (NEL...)
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def escape(value: str) -> str:
    """Escape control characters (log injection) and quotes in client-controlled text."""
    return value.translate(_ESCAPES) if not value.isprintable() or '"' in value or "\\" in value else value


class AccessRecord(Mapping[str, Any]):
    """Lazy mapping for %-formatting: only the atoms a format uses are computed."""

    __slots__ = ("addr", "method", "path", "query", "protocol", "scheme", "status", "size", "t0", "headers",
                 "_now")

    def __init__(self, addr: str, method: str, path: str, query: bytes, protocol: str, scheme: str,
                 status: int, size: int, t0: float, headers: list[tuple[bytes, bytes]]) -> None:
        self.addr = addr
        self.method = method
        self.path = path
        self.query = query
        self.protocol = protocol
        self.scheme = scheme
        self.status = status
        self.size = size
        self.t0 = t0
        self.headers = headers
        self._now = time.perf_counter()

    def __getitem__(self, key: str) -> Any:
        if key == "addr":
            return escape(self.addr)
        if key == "time":
            return time.strftime("%Y-%m-%d %H:%M:%S %z")
        if key == "dt_ms":
            return (self._now - self.t0) * 1000.0
        if key == "status":
            return self.status
        if key == "path":
            return escape(self.path)
        if key == "query_string":
            return escape(self.query.decode("latin-1"))
        if key == "method":
            return escape(self.method)
        if key == "scheme":
            return self.scheme
        if key == "protocol":
            return self.protocol
        if key in ("size", "response_size", "bytes"):
            return self.size
        if key.startswith("header{") and key.endswith("}"):
            wanted = key[7:-1].lower().encode("latin-1")
            values = [v.decode("latin-1") for n, v in self.headers if n == wanted]
            return escape(", ".join(values)) if values else "-"
        raise KeyError(key)

    def __iter__(self):  # pragma: no cover - Mapping protocol
        return iter(("addr", "time", "dt_ms", "status", "path", "query_string", "method", "scheme", "protocol",
                     "size"))

    def __len__(self) -> int:  # pragma: no cover
        return 10


def check_access_format(fmt: str) -> None:
    """Raise ValueError for a format string that would fail on every request."""
    record = AccessRecord("127.0.0.1", "GET", "/", b"", "HTTP/1.1", "http", 200, 0, time.perf_counter(), [])
    try:
        fmt % record
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"--access-log-fmt: invalid format {fmt!r}: {exc!r}") from None


def log_access(fmt: str, record: AccessRecord) -> None:
    try:
        access_logger.info(fmt % record)
    except Exception:  # noqa: BLE001 - never let logging break a connection
        logger.exception("access log formatting failed")
