"""``--reload``: edits are picked up, a broken save keeps the supervisor alive, filters apply."""

from __future__ import annotations

from typing import Callable

import httpx
import pytest

from django_granian.config import Config, ConfigError
from django_granian.workers import reload
from tests.conftest import start_server
from tests.core_client import wait_until

pytestmark = pytest.mark.timeout(90)

APP_TEMPLATE = """
async def app(scope, receive, send):
    await send({{"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
"""


def write_app(path, version: str) -> None:
    path.write_text(APP_TEMPLATE.format(version=version))


def body(url: str) -> str | None:
    try:
        return httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return None


def serves(url: str, expected: str) -> Callable[[], bool]:
    """A check for wait_until: ``url`` answers ``expected``."""
    return lambda: body(url) == expected


def reload_args(tmp_path, *extra: str) -> list[str]:
    # debug: the supervisor says when the watcher watches ("reload watcher ready"); an edit before that
    # could go unseen
    return ["--interface", "asginl", "--reload", "--reload-paths", str(tmp_path / "src"), "--reload-tick", "20",
            "--working-dir", str(tmp_path / "src"), "--log-level", "debug", *extra, "reload_app:app"]


def test_reload_picks_up_edits_and_survives_a_syntax_error(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    app = src / "reload_app.py"
    write_app(app, "v1")
    with start_server(reload_args(tmp_path), tmp_path=tmp_path) as srv:
        wait_until(serves(srv.url, "v1"), 30, what=lambda: f"v1, last {body(srv.url)!r}:\n{srv.output()}")
        wait_until(srv.logged("reload watcher ready"), 30, what=srv.output)
        write_app(app, "v2")
        wait_until(serves(srv.url, "v2"), 30, what=lambda: f"v2, last {body(srv.url)!r}:\n{srv.output()}")
        app.write_text("def broken(:\n")
        wait_until(srv.logged("failed to start"), 30, what=srv.output)
        assert srv.proc.poll() is None  # the supervisor is alive...
        assert body(srv.url) == "v2"  # ...and the previous version keeps serving
        assert "SyntaxError" in srv.output()
        write_app(app, "v3")
        wait_until(serves(srv.url, "v3"), 30, what=lambda: f"v3, last {body(srv.url)!r}:\n{srv.output()}")
        assert srv.stop() == 0


def test_reload_starting_with_a_broken_app_waits_for_a_fix(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    app = src / "reload_app.py"
    app.write_text("raise RuntimeError('not yet')\n")
    with start_server(reload_args(tmp_path), tmp_path=tmp_path) as srv:  # the supervisor's socket accepts
        wait_until(srv.logged("waiting for the next change"), 30, what=srv.output)
        assert srv.proc.poll() is None
        write_app(app, "fixed")
        wait_until(serves(srv.url, "fixed"), 30, what=lambda: f"fixed, last {body(srv.url)!r}:\n{srv.output()}")


def test_reload_ignore_patterns_and_dirs(tmp_path):
    src = tmp_path / "src"
    (src / "generated").mkdir(parents=True)
    app = src / "reload_app.py"
    write_app(app, "v1")
    args = reload_args(tmp_path, "--reload-ignore-patterns", r"^scratch_.*\.py$", "--reload-ignore-dirs", "generated")
    with start_server(args, tmp_path=tmp_path) as srv:
        wait_until(serves(srv.url, "v1"), 30, what=lambda: f"v1, last {body(srv.url)!r}:\n{srv.output()}")
        wait_until(srv.logged("reload watcher ready"), 30, what=srv.output)
        (src / "scratch_notes.py").write_text("x = 1\n")
        (src / "generated" / "models.py").write_text("x = 1\n")
        (src / "data.txt").write_text("not python\n")  # default filter: Python files only
        write_app(app, "v2")  # reported after (or together with) the changes above, had they not been ignored
        wait_until(serves(srv.url, "v2"), 30, what=lambda: f"v2, last {body(srv.url)!r}:\n{srv.output()}")
        reported = [line for line in srv.output().splitlines() if "Changes detected" in line]
        assert reported and all(line.endswith("Changes detected in reload_app.py: reloading") for line in reported), \
            reported


@pytest.mark.parametrize(("opts", "message"), [
    ({"reload_filter": "nomodule.Filter"}, "cannot import"),
    ({"reload_filter": "Filter"}, "expected an import path"),
    ({"reload_ignore_patterns": ["("]}, "not a valid regular expression"),
    ({"reload_filter": "os.sep"}, "is not a watchfiles filter"),
])
def test_filter_validation(opts, message):
    with pytest.raises(ConfigError, match=message):
        reload.build_filter(Config(app="a:b", **opts))


def test_filter_extends_the_base_class(tmp_path):
    import watchfiles

    cfg = Config(app="a:b", reload_filter="watchfiles.DefaultFilter", reload_ignore_dirs=["build"],
                 reload_ignore_patterns=[r"\.tmp$"], reload_ignore_paths=[str(tmp_path / "skip")])
    flt = reload.build_filter(cfg)
    added = watchfiles.Change.added
    assert flt(added, str(tmp_path / "a.txt"))  # DefaultFilter: every file
    assert not flt(added, str(tmp_path / "build" / "a.py"))
    assert not flt(added, str(tmp_path / "x.tmp"))
    assert not flt(added, str(tmp_path / "skip" / "a.py"))
    py_only = reload.build_filter(Config(app="a:b"))
    assert py_only(added, str(tmp_path / "a.py")) and not py_only(added, str(tmp_path / "a.txt"))
