"""docs/tutorial.md, run as written.

The tutorial's code blocks are marked ``<!-- tutorial: NAME -->``; this test reads them from the page
and runs them in a temporary directory: ``django-admin startproject``, the settings additions,
migrate / createsuperuser / collectstatic, ``python manage.py granian`` as a real process (on a free
port instead of 8000) with the tutorial's asgi.py, then real HTTP and WebSocket requests for what
the page says: the admin login page, a static file with its content type, the hashed name's
immutable caching, the precompressed .gz, ``/`` answering 404, the WebSocket echo.

The ``pip install`` block is checked, not run: the venv running the tests already has the package
(``make venv-test``), so its package name and extras are compared with pyproject.toml.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_port, wait_for_port

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

django = pytest.importorskip("django")

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"


def blocks() -> dict[str, tuple[str, str]]:
    """``{name: (language, code)}`` of the blocks marked ``<!-- tutorial: name -->``."""
    found = {}
    pattern = re.compile(r"<!-- tutorial: ([\w-]+) -->\n```(\w+)\n(.*?)```", re.S)
    for m in pattern.finditer(TUTORIAL.read_text()):
        assert m.group(1) not in found, f"two blocks named {m.group(1)}"
        found[m.group(1)] = (m.group(2), m.group(3))
    return found


def commands(name: str) -> list[list[str]]:
    lang, code = blocks()[name]
    assert lang == "sh", name
    return [words for line in code.splitlines() if (words := shlex.split(line, comments=True))]


def test_the_marked_blocks_are_there() -> None:
    assert set(blocks()) == {"install", "startproject", "settings-import", "settings-add", "manage", "serve",
                             "static", "asgi"}


def test_the_version_line_names_the_installed_django() -> None:
    text = TUTORIAL.read_text()
    m = re.search(r"Every command was run as\s+written \(Python (\d+)\.(\d+), Django (\d+)\.x\b", text)
    assert m, "the tutorial says which Python and Django it was run with"
    assert int(m.group(3)) == django.VERSION[0], f"the tutorial says Django {m.group(3)}.x, installed: " \
                                                 f"{django.get_version()}"
    assert (int(m.group(1)), int(m.group(2))) >= (3, 10)


def test_the_install_block_names_the_real_package_and_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    lang, code = blocks()["install"]
    specs = re.findall(r"pip install (?:-e )?\"([^\"]+)\"", code)
    assert specs == ["django-granian[django]", ".[all]"], specs
    for spec in specs:
        name, extra = re.fullmatch(r"([\w.-]+)\[(\w+)\]", spec).groups()  # type: ignore[union-attr]
        assert name in (project["name"], "."), name
        assert extra in extras, extra
    assert any(req.lower().startswith("django") for req in extras["django"])


def http(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def run(words: list[str], cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{shlex.join(words)} failed:\n{result.stdout}\n{result.stderr}"


def program(words: list[str]) -> list[str]:
    """The venv's Python for ``python``; ``django-admin`` through it (the venv need not be on PATH)."""
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    if words[0] == "django-admin":
        return [sys.executable, "-m", "django", *words[1:]]
    raise AssertionError(f"unexpected command in the tutorial: {shlex.join(words)}")


@pytest.mark.timeout(90)
def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GRANIAN_", "DJANGO_")) and k not in ("PYTHONPATH",)}
    env["PYTHONUNBUFFERED"] = "1"
    cwd = tmp_path

    # 2. startproject, cd
    for words in commands("startproject"):
        if words[0] == "cd":
            cwd = cwd / words[1]
        else:
            run(program(words), cwd, env)
    settings = cwd / "mysite" / "settings.py"
    generated = settings.read_text()
    assert "SECRET_KEY = '" in generated, "the tutorial follows the generated file's quote style (single quotes)"

    # 3. settings: `import os` next to the generated import, then the lines added at the end
    _, imports = blocks()["settings-import"]
    anchor = "from pathlib import Path\n"
    assert anchor in imports and anchor in generated and "import os" not in generated
    text = generated.replace(anchor, imports, 1)
    _, added = blocks()["settings-add"]
    assert '"' not in re.sub(r"#.*", "", added), "quotes as in the generated settings.py (single)"
    settings.write_text(text.rstrip("\n") + "\n\n" + added)

    # 7. asgi.py (written now, so that one server start serves both the HTTP and the WebSocket checks)
    lang, asgi = blocks()["asgi"]
    assert lang == "python"
    (cwd / "mysite" / "asgi.py").write_text(asgi)

    # 4. migrate, createsuperuser (non-interactive here), collectstatic
    manage_env = dict(env, DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_EMAIL="admin@example.com",
                      DJANGO_SUPERUSER_PASSWORD="tutorial-Pass-123")
    for words in commands("manage"):
        if words[:3] == ["python", "manage.py", "createsuperuser"]:
            words = [*words, "--noinput"]
        run(program(words), cwd, manage_env)
    manifest = json.loads((cwd / "staticfiles" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]
    assert (cwd / "staticfiles" / (hashed + ".gz")).is_file()

    # 5. serve, on a free port instead of the default 8000
    (serve,) = commands("serve")
    assert serve == ["python", "manage.py", "granian"]
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*program(serve), "--port", str(port)], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_for_port("127.0.0.1", port, proc, timeout=30)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{log.read_text()}") from None
        base = f"http://127.0.0.1:{port}"

        status, _, body = http(base + "/admin/")  # 302 to the login page, which urllib follows
        assert proc.poll() is None, f"the server exited (port {port} taken?):\n{log.read_text()}"
        assert status == 200 and b"csrfmiddlewaretoken" in body, (status, body[:300], log.read_text())
        assert f"/static/{hashed}".encode() in body, "the login page links the hashed stylesheet"

        status, _, body = http(base + "/")
        assert status == 404, ("the tutorial says / is a 404 in a new project with DEBUG off", body[:2000])

        (curl,) = commands("static")
        assert curl[0] == "curl" and curl[-1].startswith("http://127.0.0.1:8000/")
        status, headers, body = http(curl[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
        assert status == 200 and headers["content-type"] == "text/css; charset=utf-8", log.read_text()
        assert headers["etag"] and headers["last-modified"] and b"body" in body

        status, headers, _ = http(f"{base}/static/{hashed}", {"Accept-Encoding": "gzip"})
        assert status == 200 and headers["content-encoding"] == "gzip"
        assert headers["cache-control"] == "max-age=315360000, public, immutable"
        assert int(headers["content-length"]) == (cwd / "staticfiles" / (hashed + ".gz")).stat().st_size

        websockets = pytest.importorskip("websockets")

        async def echo() -> tuple[Any, int | None]:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws/echo") as ws:
                await ws.send("hello")
                reply = await asyncio.wait_for(ws.recv(), 10)
            # closed before accept: the handshake is refused (ASGI: HTTP 403)
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(f"ws://127.0.0.1:{port}/ws/other")
            return reply, refused.value.response.status_code

        assert asyncio.run(echo()) == ("hello", 403)

        proc.send_signal(signal.SIGTERM)  # "Stop the server with Ctrl+C (or SIGTERM)"
        assert proc.wait(timeout=40) == 0, log.read_text()
        output = log.read_text()
        assert f"/static/{hashed}" in output, "settings.GRANIAN's access_log is on"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
