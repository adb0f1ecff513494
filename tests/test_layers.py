"""Imports point one way: protocol -> server -> app -> static_files / workers -> django.

Every import in the package is read with ``ast`` (also the ones inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency) and checked against the layer table below,
which is the layer diagram of docs/architecture.md as data. A module may import its own layer and
the layers below it, never a layer above: a lower layer that needs something from above is handed
it (a channel, ``state.interface``, a ServerState hook) instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "django_granian"

# the first name below django_granian -> its layer (higher numbers may import lower ones)
LAYERS = {
    "protocol": 0,  # sans-IO: bytes in, events out
    "config": 1, "config_file": 1, "logs": 1, "futures": 1, "sizing": 1,  # leaves every layer may use, and the content
    "compression": 1,  # codings (config.py and compression/policy.py share the type rules)
    "acme": 2,  # certificates: the ACME client and process, the cache directory the server reads
    "server": 3,  # asyncio transports and channels
    "app": 4,  # interfaces and request cycles
    "static_files": 5, "workers": 5, "serving": 5,  # what hosts an app: engines, one process, many
    "runner": 6, "cli": 6,  # process entry points
    "django": 7,  # the Django integration
    "__init__": 8, "__main__": 8, "apps": 8, "management": 8,  # the package's outer shell
}
# imports that skip the channel even though they point downwards: what these layers need is handed to them
NEVER = {
    ("app", "server"): "request cycles reach the transport only through the channel they are handed",
    ("static_files", "server"): "the static file engine answers through the channel (respond, respond_fd)",
    ("static_files", "app"): "the static file engine is asked by the interface, it does not call back into it",
}
ALLOWED_FROM_ROOT = {"__version__"}  # the package's version string is metadata, not a layer


def _layer_of(parts: tuple[str, ...]) -> str:
    if not parts:
        return "__init__"
    return parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute target module, imported names) of every import of the package in ``path``."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    module = list(rel.parts)
    package = module if path.name == "__init__.py" else module[:-1]
    if path.name == "__init__.py":
        module = module[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names]
    return [(line, target, names) for line, target, names in found
            if target == "django_granian" or target.startswith("django_granian.")]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def violations(modules: list[Path]) -> list[str]:
    out = []
    for path in modules:
        source = _layer_of(path.relative_to(PACKAGE).parts)
        for line, target, names in _imports(path):
            parts = tuple(target.split(".")[1:])
            if not parts:
                if set(names) <= ALLOWED_FROM_ROOT:
                    continue
                dest = "__init__"
            else:
                dest = _layer_of(parts)
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
            if LAYERS[dest] > LAYERS[source]:
                out.append(f"{where}: {source} (layer {LAYERS[source]}) must not import {dest} (layer {LAYERS[dest]})")
            elif (source, dest) in NEVER:
                out.append(f"{where}: {NEVER[source, dest]}")
    return out


def test_every_module_has_a_layer() -> None:
    unknown = {_layer_of(p.relative_to(PACKAGE).parts) for p in _modules()} - set(LAYERS)
    assert not unknown, f"add these to LAYERS (and to docs/architecture.md): {sorted(unknown)}"


def test_imports_point_one_way() -> None:
    problems = violations(_modules())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(("where", "source", "bad"), [
    ("server/h1.py", "from ..app.websocket import start_websocket\n", "server (layer 3) must not import app"),
    ("config.py", "def f():\n    from .workers.sizing import auto_workers\n", "config (layer 1) must not import workers"),
    ("app/rsgi.py", "from ..server.sendfile import send_file_response\n", "through the channel"),
    ("static_files/files.py", "from ..server.h1 import ServerResponse\n", "through the channel"),
    ("protocol/http2.py", "import django_granian.server.state\n", "protocol (layer 0) must not import server"),
])
def test_the_check_catches_an_import_against_the_direction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           where: str, source: str, bad: str) -> None:
    fake = tmp_path / "django_granian" / where
    fake.parent.mkdir(parents=True)
    fake.write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", tmp_path / "django_granian")
    problems = violations([fake])
    assert len(problems) == 1 and bad in problems[0], problems
