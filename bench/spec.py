"""What a benchmark scenario is: servers to compare, workloads to run against each, and the registry.

A scenario module (``bench/scenarios/<name>.py``) builds a :class:`Scenario` and calls :func:`register`.
Command lines are lists of strings with ``{placeholders}`` filled in per server start:

``{python}`` the interpreter running the harness (the venv's), ``{root}`` the repository root,
``{host}`` 127.0.0.1, ``{port}`` a free port chosen for this server, ``{tmp}`` the run's temp directory,
plus whatever the scenario's ``setup`` returns (e.g. ``{static_dir}``).
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# Our server, started exactly as a user would: ``python -m django_granian`` (== the ``django-granian`` script).
DJANGO_GRANIAN = ("{python}", "-m", "django_granian", "--host", "{host}", "--port", "{port}",
                  "--log-level", "warning", "--no-access-log")
# Granian from PyPI (Rust), same flags.
GRANIAN = ("{python}", "-m", "granian", "--host", "{host}", "--port", "{port}",
           "--log-level", "warning", "--no-access-log")


class LoadTool:
    """A load generator: builds its command line and parses its output into a Measurement dict.

    Implementations live in :mod:`bench.loadgen` (wrk, h2load, the WebSocket echo client, in-process).
    """

    name = "?"
    #: executables / python modules the tool needs (missing -> the scenario is skipped with a reason)
    requires: tuple[str, ...] = ()

    def command(self, url: str, duration: float, options: RunOptions) -> list[str]:
        raise NotImplementedError

    def parse(self, stdout: str) -> dict:
        raise NotImplementedError

    def describe(self, options: RunOptions) -> str:
        return self.name


@dataclass(frozen=True)
class Server:
    """One server (or in-process ceiling) to compare.

    ``group``: rows are compared (ratio) with the FIRST server of the same group — put ours first.
    ``inprocess``: not a server: ``argv`` itself is the measurement (run pinned on the server CPU for
    ``{duration}`` seconds, printing a ``BENCH_JSON {...}`` line like the load tools' parsers expect).
    ``prepare(ctx)`` may write config files into ``ctx["tmp"]`` before the start (nginx).
    """

    name: str
    argv: Sequence[str]
    group: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "{root}"
    #: executables (found on PATH) or ``py:<module>`` importable modules needed to run it
    requires: Sequence[str] = ()
    #: distribution names whose versions are reported (importlib.metadata), or ``cmd:<argv...>`` to run
    versions: Sequence[str] = ()
    prepare: Callable[[dict[str, str]], None] | None = None
    inprocess: bool = False
    #: seconds to wait for the port
    start_timeout: float = 30.0

    def missing(self) -> list[str]:
        return [r for r in self.requires if not available(r)]


@dataclass(frozen=True)
class Workload:
    """A request pattern run against every server: a URL path and a load tool."""

    name: str
    path: str
    tool: LoadTool
    #: only run against these server names (default: all)
    only: Sequence[str] | None = None

    def applies_to(self, server: Server) -> bool:
        return self.only is None or server.name in self.only


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    servers: Sequence[Server]
    workloads: Sequence[Workload]
    #: creates fixtures in the run's temp dir; returns extra placeholders (e.g. {"static_dir": ...})
    setup: Callable[[Path], Mapping[str, str]] | None = None
    #: the docs page results go to (informational)
    doc: str = ""
    #: text printed under the table (what the numbers mean, caveats)
    notes: str = ""
    #: override the CPU lists of the run options (e.g. multi-worker scenarios use every core)
    server_cpus: str | None = None
    client_cpus: str | None = None


@dataclass
class RunOptions:
    duration: float = 10.0
    rounds: int = 3
    warmup: float = 2.0
    connections: int = 64
    threads: int = 1
    server_cpus: str = "0"
    client_cpus: str = "1"
    pin: bool = True
    servers: Sequence[str] | None = None
    workloads: Sequence[str] | None = None


def available(requirement: str) -> bool:
    if requirement.startswith("py:"):
        try:
            return importlib.util.find_spec(requirement[3:]) is not None
        except (ImportError, ValueError):
            return False
    return shutil.which(requirement) is not None


_REGISTRY: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    if scenario.name in _REGISTRY:
        raise ValueError(f"scenario {scenario.name!r} registered twice")
    names = [s.name for s in scenario.servers]
    if len(set(names)) != len(names):
        raise ValueError(f"scenario {scenario.name!r}: duplicate server names {names}")
    _REGISTRY[scenario.name] = scenario
    return scenario


def scenarios() -> dict[str, Scenario]:
    import bench.scenarios  # noqa: F401  (imports every scenario module, which registers itself)

    return dict(sorted(_REGISTRY.items()))


def get(name: str) -> Scenario:
    table = scenarios()
    if name not in table:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(table)}")
    return table[name]
