"""``--config site.toml``: the loader (a table of good and bad files), precedence against the environment
and the command line, and the real CLI and ``manage.py granian`` reading one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from django_granian.cli import config_from_args
from django_granian.config import ConfigError
from django_granian.config_file import load_config_file

from .conftest import APPS, ROOT, start_server
from .core_client import Conn, get, wait_until


def write(tmp_path: Path, text: str, name: str = "site.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_values_are_parsed_like_the_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, """
workers = 2
static-path-expires = 600          # dashes work too
http1_keep_alive = false
limit_request_body = "20MiB"
forwarded_allow_ips = ["10.0.0.0/8", "127.0.0.1"]
compress = true
compress_encodings = "gzip br"     # a string is split like GRANIAN_* values
log_level = "WARNING"
""")
    assert load_config_file(path) == {
        "workers": 2, "static_path_expires": 600, "http1_keep_alive": False, "limit_request_body": 20 * 2**20,
        "forwarded_allow_ips": ["10.0.0.0/8", "127.0.0.1"], "compress": True, "compress_encodings": ["gzip", "br"],
        "log_level": "warning"}


@pytest.mark.parametrize(("text", "message"), [
    ("wokers = 2", "unknown option 'wokers' in {path} (did you mean 'workers'?)"),
    ("compres = true", "unknown option 'compres' in {path} (did you mean 'compress'?)"),
    ("nonsense_key = 1", "unknown option 'nonsense_key' in {path}"),
    ("[http]\nkeep_alive = true", "'http' is a table; options are top-level keys"),
    ("[server]\nworkers = 2", "unknown option 'server' in {path}"),
    ("workers = 'many'", "--workers (from {path}): invalid value 'many'"),
    ("http = 3", "--http (from {path}): invalid value 3"),
    ("config = 'other.toml'", "'config' cannot be set inside a config file"),
    ("workers = ", "not valid TOML"),
    ("workers = 2\nworkers = 3", "not valid TOML"),
])
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config_file(path)
    assert message.format(path=path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config: invalid value .*does not exist"):
        config_from_args(["--config", str(tmp_path / "nope.toml"), "app:app"], environ={})


def test_precedence_file_env_command_line(tmp_path: Path) -> None:
    path = write(tmp_path, "workers = 2\nbacklog = 300\nstatic_path_expires = 600\napp = 'from_file:app'\n")
    config = config_from_args(["--config", path, "--backlog", "500"], environ={"GRANIAN_STATIC_PATH_EXPIRES": "700"})
    assert (config.workers, config.backlog, config.static_path_expires, config.app) == (2, 500, 700, "from_file:app")
    sources = config._sources  # type: ignore[attr-defined]
    assert sources["workers"] == path and sources["app"] == path
    assert sources["backlog"] == "command line" and sources["static_path_expires"] == "env"
    assert sources["config"] == "command line"


def test_granian_config_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "workers = 3\n")
    config = config_from_args(["app:app"], environ={"GRANIAN_CONFIG": path})
    assert config.workers == 3 and config._sources["workers"] == path  # type: ignore[attr-defined]
    assert config._sources["config"] == "env"  # type: ignore[attr-defined]


def test_the_cli_serves_from_a_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'interface = "asgi"\napp = "hello_apps:app"\nserver_header = false\n')
    with start_server(["--config", path], tmp_path=tmp_path) as srv:
        out = wait_until(srv.logged("Options:"), what=srv.output)
        assert f"Config file {path}; precedence, lowest first: defaults < {path} < GRANIAN_* environment < " \
               "command line" in out
        assert f"--interface='asgi' ({path})" in out and f"--server-header=False ({path})" in out
        with Conn(srv.port) as c:
            r = c.request(get("/"))
        assert r.status == 200 and r.header("server") is None


def test_an_unknown_key_stops_the_cli_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, 'app = "hello_apps:app"\nwokers = 2\n')
    proc = subprocess.run([sys.executable, "-m", "django_granian", "--config", path], capture_output=True, text=True,
                          timeout=30, cwd=str(ROOT), env={"PYTHONPATH": f"{ROOT}:{APPS}", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert f"Error: unknown option 'wokers' in {path} (did you mean 'workers'?)" in proc.stderr


def test_manage_py_granian_reads_it_after_settings_granian(tmp_path: Path) -> None:
    """defaults < Django settings < settings.GRANIAN < the file < GRANIAN_* < command line."""
    from .test_django import MANAGE

    path = write(tmp_path, "static_path_expires = 600\nbackpressure = 7\nhttp1_buffer_size = 65536\n")
    env = {"PATH": "/usr/bin:/bin", "TESTPROJECT_DB": str(tmp_path / "db.sqlite3"),
           "TESTPROJECT_GRANIAN": json.dumps({"static_path_expires": 300, "backlog": 200}),
           "GRANIAN_BACKPRESSURE": "9", "GRANIAN_CONFIG": path}
    proc = subprocess.run([sys.executable, MANAGE, "granian", "--print-config", "--http1-buffer-size", "32768"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr
    options = json.loads(proc.stdout)["options"]
    assert options["--static-path-expires"] == {"value": 600, "source": path}       # file > settings.GRANIAN
    assert options["--backlog"] == {"value": 200, "source": "settings.GRANIAN"}
    assert options["--backpressure"] == {"value": 9, "source": "env"}               # env > file
    assert options["--http1-buffer-size"] == {"value": 32768, "source": "command line"}
    assert options["--config"] == {"value": path, "source": "env"}


def test_the_documented_files_use_known_options() -> None:
    """Every ```toml block in the docs parses and names only real options."""
    import re

    from django_granian.config import OPTIONS
    from django_granian.config_file import tomllib

    blocks = 0
    for page in sorted((ROOT / "docs").rglob("*.md")):
        for block in re.findall(r"```toml\n(.*?)```", page.read_text(), re.S):
            data = tomllib.loads(block)
            assert [k for k in data if k.replace("-", "_") not in OPTIONS] == [], page
            blocks += 1
    assert blocks >= 2
