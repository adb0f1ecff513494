"""App loading: module:attr, module:attr.sub, file.py:attr, --factory, interface detection, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from django_granian.app.loader import AppLoadError, detect_interface, load_target


@pytest.fixture
def appdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "core_loader_mod.py").write_text(
        "async def app(scope, receive, send): pass\n"
        "def wsgi(environ, start_response): return []\n"
        "class Holder:\n    inner = staticmethod(app)\n"
        "def make(): return app\n"
        "def broken(): raise ValueError('factory says no')\n"
        "value = 42\n")
    (tmp_path / "core_loader_bad.py").write_text("import does_not_exist_core\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in ("core_loader_mod", "core_loader_bad"):
        sys.modules.pop(name, None)


def test_targets(appdir: Path) -> None:
    mod = load_target("core_loader_mod:app")
    assert load_target("core_loader_mod") is mod  # attr defaults to "app"
    assert load_target("core_loader_mod:Holder.inner") is mod
    assert load_target("core_loader_mod:make", factory=True) is mod
    assert detect_interface(load_target(str(appdir / "core_loader_mod.py") + ":app")) == "asgi"
    assert detect_interface(load_target("core_loader_mod:wsgi")) == "wsgi"


@pytest.mark.parametrize("target,factory,message", [
    ("core_loader_missing:app", False, "could not import module 'core_loader_missing'"),
    ("core_loader_bad:app", False, "does_not_exist_core"),
    ("core_loader_mod:nope", False, "attribute 'nope' not found"),
    ("core_loader_mod:value", False, "is not callable"),
    ("core_loader_mod:broken", True, "factory says no"),
    ("missing_file.py:app", False, "does not exist"),
    (":app", False, "expected module:attr"),
])
def test_errors(appdir: Path, target: str, factory: bool, message: str) -> None:
    with pytest.raises(AppLoadError, match=message.replace("(", r"\(")):
        load_target(target, factory=factory)


def test_bad_app_exits_with_a_message(tmp_path: Path) -> None:
    import subprocess

    from .conftest import APPS, ROOT

    result = subprocess.run([sys.executable, "-m", "django_granian", "core_apps:nothing_here", "--port", "0"],
                            capture_output=True, text=True, timeout=30, cwd=ROOT,
                            env={"PYTHONPATH": f"{ROOT}:{APPS}", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "attribute 'nothing_here' not found in module 'core_apps'" in result.stderr + result.stdout
