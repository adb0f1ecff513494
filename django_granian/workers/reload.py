"""``--reload``: a watcher process (watchfiles) that tells the supervisor when source files change.

The watcher runs in its own forked process so the supervisor stays single-threaded (forking workers
from a process with threads is unsafe). It writes one line per batch of changes on its channel;
the supervisor then replaces the workers (new ones first, so a syntax error leaves the previous
version serving and the supervisor waits for the next save).

Default filter: Python sources only (``watchfiles.PythonFilter``: ``.py``, ``.pyx``, ``.pyd``), so a
Django project's SQLite database, logs or uploaded media do not trigger reload loops. Pass
``--reload-filter watchfiles.DefaultFilter`` to react to every file (Granian's default).
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import socket
from typing import Any, Callable, NoReturn

from ..config import Config, ConfigError


def check_available() -> None:
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        raise ConfigError("--reload needs watchfiles (pip install django-granian[reload])") from None


def watch_paths(config: Config) -> list[str]:
    paths = [os.path.abspath(p) for p in (config.reload_paths or [os.getcwd()])]
    for path in paths:
        if not os.path.exists(path):
            raise ConfigError(f"--reload-paths: {path!r} does not exist")
    return paths


def _import_filter(path: str) -> Any:
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    if not module_name:
        raise ConfigError(f"--reload-filter {path!r}: expected an import path like package.module.FilterClass")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--reload-filter {path!r}: cannot import it ({exc})") from None


def build_filter(config: Config) -> Callable[[Any, str], bool]:
    """The watchfiles filter: the base class extended with the --reload-ignore-* options."""
    import watchfiles

    for pattern in config.reload_ignore_patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"--reload-ignore-patterns: {pattern!r} is not a valid regular expression ({exc})")
    base = _import_filter(config.reload_filter) if config.reload_filter else watchfiles.PythonFilter
    extra = config.reload_ignore_dirs or config.reload_ignore_patterns or config.reload_ignore_paths
    if isinstance(base, type) and issubclass(base, watchfiles.DefaultFilter):
        cls = type("ReloadFilter", (base,), {
            "ignore_dirs": (*base.ignore_dirs, *config.reload_ignore_dirs),
            "ignore_entity_patterns": (*base.ignore_entity_patterns, *config.reload_ignore_patterns),
            "ignore_paths": (*base.ignore_paths, *(os.path.abspath(p) for p in config.reload_ignore_paths)),
        })
        return cls()  # type: ignore[no-any-return]
    if extra:
        raise ConfigError("--reload-ignore-dirs/-patterns/-paths need a --reload-filter derived from "
                          "watchfiles.DefaultFilter")
    made = base() if isinstance(base, type) else base
    if not callable(made):
        raise ConfigError(f"--reload-filter {config.reload_filter!r} is not a watchfiles filter (a callable)")
    return made  # type: ignore[no-any-return]


def watcher_main(config: Config, chan: socket.socket, paths: list[str], watch_filter: Any) -> NoReturn:
    """Watcher process main: one line per batch of changes, until the supervisor goes away."""
    code = 0
    try:
        import watchfiles

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        parent = os.getppid()
        ready = False
        for changes in watchfiles.watch(*paths, watch_filter=watch_filter, step=config.reload_tick,
                                        debounce=max(config.reload_tick * 4, 200), rust_timeout=1000,
                                        yield_on_timeout=True, raise_interrupt=False):
            if os.getppid() != parent:
                break
            if not ready:  # the first yield (at the latest after rust_timeout): the watches are in place
                ready = True
                chan.sendall(b"R\n")
            if not changes:
                continue
            names = sorted({os.path.relpath(path) for _, path in changes})
            line = "C" + " ".join(names)[:2000].replace("\n", " ") + "\n"
            chan.sendall(line.encode("utf-8", "replace"))
    except (OSError, KeyboardInterrupt):
        code = 0
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)
