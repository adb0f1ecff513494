"""The Django integration against the real ``testproject`` served by ``manage.py granian``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from django_granian.django.supervise import interpreter_options
from tests.conftest import ROOT, start_server
from tests.core_client import Conn, get, wait_until

MANAGE = str(ROOT / "testproject" / "manage.py")
GRANIAN_CMD = [sys.executable, MANAGE, "granian"]


@pytest.fixture(scope="session")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """collectstatic (whitenoise CompressedManifestStaticFilesStorage) into a private STATIC_ROOT."""
    root = tmp_path_factory.mktemp("static")
    subprocess.run([sys.executable, MANAGE, "collectstatic", "--noinput", "-v0"], check=True, timeout=120,
                   env={**os.environ, "TESTPROJECT_STATIC_ROOT": str(root)})
    return root


@pytest.fixture
def project_env(static_root: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRANIAN_", "TESTPROJECT_"))}
    env["TESTPROJECT_STATIC_ROOT"] = str(static_root)
    env["TESTPROJECT_DB"] = str(tmp_path / "db.sqlite3")
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, MANAGE, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))


def print_config(env: dict[str, str], *args: str) -> dict:
    proc = manage("granian", "--print-config", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def django_server(env: dict[str, str], tmp_path: Path, *args: str, command: str = "granian"):
    return start_server(["--workers", "1", *args], env=env, tmp_path=tmp_path,
                        cmd=[sys.executable, MANAGE, command])


# -- settings -> options, with their sources --------------------------------------------------------
@pytest.mark.parametrize(("granian", "env", "args", "flag", "value", "source"), [
    ({}, {}, [], "--blocking-threads", None, "machine"),
    ({"static_path_expires": 600}, {}, [], "--static-path-expires", 600, "settings.GRANIAN"),
    ({"static_path_expires": 600}, {"GRANIAN_STATIC_PATH_EXPIRES": "700"}, [], "--static-path-expires", 700, "env"),
    ({"static_path_expires": 600}, {"GRANIAN_STATIC_PATH_EXPIRES": "700"}, ["--static-path-expires", "800"],
     "--static-path-expires", 800, "command line"),
    ({"http1-keep-alive": False}, {}, [], "--http1-keep-alive", False, "settings.GRANIAN"),
    ({"blocking_threads": 3}, {}, [], "--blocking-threads", 3, "settings.GRANIAN"),
    ({}, {}, ["--blocking-threads", "2"], "--blocking-threads", 2, "command line"),
    ({}, {}, ["0.0.0.0:9123"], "--port", 9123, "command line"),
    ({}, {}, ["0.0.0.0:9123"], "--host", "0.0.0.0", "command line"),
    ({}, {"TESTPROJECT_SCRIPT_NAME": "/prefix/"}, [], "--url-path-prefix", "/prefix", "FORCE_SCRIPT_NAME"),
    ({}, {}, [], "--static-path-route", ["/static"], "STATIC_URL"),
    ({}, {"TESTPROJECT_SCRIPT_NAME": "/prefix"}, [], "--static-path-route", ["/prefix/static"], "STATIC_URL"),
    ({"interface": "asgi"}, {}, [], "--interface", "asgi", "settings.GRANIAN"),
])
def test_option_sources(project_env, granian, env, args, flag, value, source):
    project_env.update(env)
    project_env["TESTPROJECT_GRANIAN"] = json.dumps(granian)
    report = print_config(project_env, *args)
    assert report["app"] == "django_granian.django.application:application"
    option = report["options"][flag]
    if value is not None:
        assert option["value"] == value
    assert option["source"].startswith(source), option


def test_static_root_mapping_and_extra_mounts(project_env, static_root, tmp_path):
    report = print_config(project_env)
    assert report["options"]["--static-path-mount"]["value"] == [str(static_root)]
    media = tmp_path / "media"
    media.mkdir()
    report = print_config(project_env, "--static-path-route", "/media", "--static-path-mount", str(media))
    assert report["options"]["--static-path-route"]["value"] == ["/media", "/static"]
    assert report["options"]["--static-path-mount"]["value"] == [str(media), str(static_root)]


def test_warnings_debug_and_missing_static_root(project_env, tmp_path):
    empty = tmp_path / "empty-static"
    empty.mkdir()
    project_env.update(TESTPROJECT_DEBUG="1", TESTPROJECT_STATIC_ROOT=str(empty))
    report = print_config(project_env)
    text = "\n".join(report["warnings"])
    assert "DEBUG = True" in text and "production server" in text
    assert "collectstatic" in text
    assert "--static-path-mount" not in report["options"]


def test_collectstatic_flag(project_env, tmp_path):
    target = tmp_path / "collected"
    project_env["TESTPROJECT_STATIC_ROOT"] = str(target)
    report = print_config(project_env, "--collectstatic")
    assert report["options"]["--static-path-mount"]["value"] == [str(target)]
    assert (target / "staticfiles.json").is_file()
    assert not any("collectstatic" in w for w in report["warnings"])
    # only the project's and the admin's files: nothing of django_granian itself is published (its
    # static file engine once lived in a package named ``static``, which collectstatic copied)
    assert sorted(p.name for p in target.iterdir()) == ["admin", "demo", "staticfiles.json"]
    assert not list(target.rglob("*.py"))


# -- system checks --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("granian", "check_id", "text"), [
    ({"wrokers": 2}, "django_granian.E002", "did you mean 'workers'"),
    ([1, 2], "django_granian.E001", "must be a dict"),
    ({"app": "x:y"}, "django_granian.E003", "cannot be set"),
    ({"workers": "many"}, "django_granian.E004", "invalid value"),
    ({"http": "3"}, "django_granian.E004", "--http"),
    ({"static_path_route": ["/a"]}, "django_granian.E005", "same number of times"),
])
def test_bad_granian_setting_is_a_check_error(project_env, granian, check_id, text):
    project_env["TESTPROJECT_GRANIAN"] = json.dumps(granian)
    check = manage("check", "--tag", "django_granian", env=project_env)
    assert check.returncode != 0
    assert check_id in check.stderr and text in check.stderr, check.stderr
    serve = manage("granian", "--port", "1", env=project_env)  # never binds: the checks stop it first
    assert serve.returncode != 0
    assert check_id in serve.stderr, serve.stderr


@pytest.mark.parametrize(("env", "check_id"), [
    ({"TESTPROJECT_PROXY_SSL": "1"}, "django_granian.W002"),
    ({"TESTPROJECT_STATIC_ROOT": str(ROOT / "testproject" / "demo" / "static" / "collected")},
     "django_granian.W001"),
])
def test_check_warnings(project_env, env, check_id):
    project_env.update(env)
    check = manage("check", "--tag", "django_granian", env=project_env)
    assert check.returncode == 0
    assert check_id in check.stderr + check.stdout


@pytest.mark.parametrize(("env", "expected", "absent"), [
    ({"TESTPROJECT_ALLOWED_HOSTS": "www.app.test", "TESTPROJECT_GRANIAN": json.dumps(
        {"acme_domain": ["app.test", "www.app.test"]})}, ["W004", "acme_domain app.test not covered"], ["W005"]),
    ({"TESTPROJECT_ALLOWED_HOSTS": ".app.test", "GRANIAN_ACME_DOMAIN": "app.test www.app.test"}, [], ["W004"]),
    ({"TESTPROJECT_PROXY_SSL": "1", "TESTPROJECT_GRANIAN": json.dumps(
        {"acme_domain": ["app.test"], "forwarded_allow_ips": ["10.0.0.1"]})}, ["W005"], ["W004", "W002"]),
    ({"TESTPROJECT_GRANIAN": json.dumps({"acme_domain": ["app.test"], "hsts": "60"}),
      "DJANGO_SETTINGS_MODULE": "testproject.settings"}, [], ["W004", "W005", "W006"]),
])
def test_https_checks(project_env, env, expected, absent):
    """acme_domain must be in ALLOWED_HOSTS; SECURE_PROXY_SSL_HEADER makes no sense when the server
    terminates TLS itself (settings.GRANIAN or GRANIAN_* variables)."""
    project_env.update(env)
    check = manage("check", "--tag", "django_granian", env=project_env)
    text = check.stderr + check.stdout
    assert check.returncode == 0, text
    for item in expected:
        assert item in text, text
    for item in absent:
        assert item not in text, text


def test_proxy_warning_silenced_by_forwarded_allow_ips(project_env):
    project_env.update(TESTPROJECT_PROXY_SSL="1", TESTPROJECT_GRANIAN=json.dumps({"forwarded_allow_ips": ["10.0.0.1"]}))
    check = manage("check", "--tag", "django_granian", env=project_env)
    assert check.returncode == 0
    assert "W002" not in check.stderr + check.stdout
    assert "no issues" in check.stdout


# -- the served project ------------------------------------------------------------------------------
def test_fast_path_end_to_end(project_env, tmp_path):
    with django_server(project_env, tmp_path, "--access-log") as srv:
        out = wait_until(srv.logged("Options:"), what=srv.output)
        assert "Serving Django testproject (fast path: HTTP via WSGI, " in out
        assert re.search(r"--static-path-mount=\[.*\] \(STATIC_ROOT\)", out), out
        assert "--access-log=True (command line)" in out
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            r = client.get("/api/health")
            assert r.status_code == 200 and r.json() == {"status": "ok"}
            info = client.get("/info/").json()
            assert info["via"] == "wsgi" and info["thread"].startswith("django-granian")
            assert info["script_name"] == "" and info["path_info"] == "/info/"
            assert info["lifespan_started"] is True  # lifespan went to the ASGI app, in the same process
            # async view on the WSGI path (Django runs it with async_to_sync)
            r = client.get("/async/")
            assert r.status_code == 200
            info = r.json()
            assert info["async"] is True and info["via"] == "wsgi" and info["path"] == "/async/"
            # the coroutine ran on the worker's event loop (no thread + loop per request), and the
            # thread-sensitive sync code it awaited came back to the request's pool thread
            assert info["thread"] == "MainThread", info
            assert info["sync_thread"].startswith("django-granian-wsgi"), info
            # streaming: sync and async iterators
            r = client.get("/stream/?n=50")
            assert r.headers.get("transfer-encoding") == "chunked"
            assert r.text == "".join(f"chunk {i}\n" for i in range(50))
            assert client.get("/stream-async/?n=3").text == "achunk 0\nachunk 1\nachunk 2\n"
            # the template page and its static files (manifest-hashed names)
            page = client.get("/")
            assert page.status_code == 200 and '<strong id="via">wsgi</strong>' in page.text
            css = re.search(r'href="(/static/demo/site\.[0-9a-f]{12}\.css)"', page.text)
            js = re.search(r'src="(/static/demo/site\.[0-9a-f]{12}\.js)"', page.text)
            assert css and js, page.text
            r = client.get(js.group(1))
            assert r.status_code == 200 and "javascript" in r.headers["content-type"]
            assert "WebSocket" in r.text
            check_static(client, css.group(1))
            # upload form with CSRF
            form = client.get("/upload/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
            data = os.urandom(300_000)
            r = client.post("/upload/", data={"csrfmiddlewaretoken": token, "note": "hi"},
                            files={"file": ("blob.bin", data, "application/octet-stream")},
                            headers={"referer": srv.url + "/upload/"})
            assert r.status_code == 200, r.text
            assert r.json() == {"name": "blob.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                "note": "hi"}
            # without the token Django refuses (the form really is protected)
            assert client.post("/upload/", files={"file": ("a", b"x")}).status_code == 403
            # admin login page and its CSS
            login = client.get("/admin/login/")
            assert login.status_code == 200 and "csrfmiddlewaretoken" in login.text
            admin_css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login.text)
            assert admin_css, login.text
            check_static(client, admin_css.group(1))
            assert client.get("/static/admin/css/nope.css").status_code == 404
        # one header casing on the wire: Django's Title-Case names go out lowercase like the server's own
        with Conn(srv.port) as conn:
            for path in ("/api/health", "/", "/stream/?n=2", css.group(1)):
                raw = conn.request(get(path)).raw_head
                names = [line.split(b":", 1)[0] for line in raw.split(b"\r\n")[1:]]
                assert b"content-type" in names and names == [n.lower() for n in names], raw
        wait_until(srv.logged('"GET /api/health HTTP/1.1" 200'), what=srv.output)


@pytest.mark.parametrize("interface", ["auto", "asgi"])
def test_admin_login_with_database(project_env, tmp_path, interface):
    """A database-backed flow: sessions and users in SQLite, read and written from the pool threads
    (fast path) or through asgiref (ASGI); two Set-Cookie headers on one response; a redirect."""
    assert manage("migrate", "--noinput", "-v0", env=project_env).returncode == 0
    created = manage("createsuperuser", "--noinput", "--username", "admin", "--email", "a@example.com",
                     env={**project_env, "DJANGO_SUPERUSER_PASSWORD": "pw-2026-granian"})
    assert created.returncode == 0, created.stderr
    with django_server(project_env, tmp_path, "--interface", interface) as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            assert client.get("/admin/").headers["location"] == "/admin/login/?next=/admin/"
            form = client.get("/admin/login/?next=/admin/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
            fields = {"csrfmiddlewaretoken": token, "username": "admin", "next": "/admin/"}
            headers = {"referer": srv.url + "/admin/login/"}
            wrong = client.post("/admin/login/?next=/admin/", data={**fields, "password": "nope"}, headers=headers)
            assert wrong.status_code == 200 and "Please enter the correct username and password" in wrong.text, \
                (wrong.status_code, dict(client.cookies), srv.output())
            r = client.post("/admin/login/?next=/admin/", data={**fields, "password": "pw-2026-granian"},
                            headers=headers)
            assert r.status_code == 302 and r.headers["location"] == "/admin/"
            cookies = r.headers.get_list("set-cookie")
            assert sorted(c.split("=", 1)[0] for c in cookies) == ["csrftoken", "sessionid"], cookies
            home = client.get("/admin/")
            assert home.status_code == 200 and "Site administration" in home.text
            users = client.get("/admin/auth/user/")
            assert users.status_code == 200 and "a@example.com" in users.text


def check_static(client: httpx.Client, url: str) -> None:
    """Manifest-hashed, whitenoise-compressed static file: immutable, ETag/304, gzip variant."""
    r = client.get(url, headers={"accept-encoding": "identity"})
    assert r.status_code == 200, (url, r.status_code)
    assert r.headers["content-type"].startswith("text/css")
    assert "immutable" in r.headers["cache-control"]
    etag = r.headers["etag"]
    plain = r.content
    r304 = client.get(url, headers={"if-none-match": etag, "accept-encoding": "identity"})
    assert r304.status_code == 304 and r304.content == b""
    gz = client.get(url, headers={"accept-encoding": "gzip"})
    assert gz.status_code == 200 and gz.headers.get("content-encoding") == "gzip"
    assert gz.content == plain  # httpx decodes it
    assert "accept-encoding" in gz.headers.get("vary", "").lower()


@pytest.mark.parametrize("interface", ["auto", "asgi"])
def test_force_script_name(project_env, tmp_path, interface):
    project_env["TESTPROJECT_SCRIPT_NAME"] = "/prefix"
    with django_server(project_env, tmp_path, "--interface", interface) as srv:
        out = wait_until(srv.logged("Options:"), what=srv.output)
        assert "--url-path-prefix='/prefix' (FORCE_SCRIPT_NAME)" in out
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            info = client.get("/prefix/info/?x=1").json()
            assert info["via"] == ("wsgi" if interface == "auto" else "asgi")
            assert info["script_name"] == "/prefix"
            assert info["path"] == "/prefix/info/" and info["path_info"] == "/info/"
            assert info["absolute_uri"] == srv.url + "/prefix/info/?x=1"
            assert re.fullmatch(r"/prefix/static/demo/site\.[0-9a-f]{12}\.css", info["static_css"]), info
            r = client.get(info["static_css"])
            assert r.status_code == 200 and "immutable" in r.headers["cache-control"]
            assert client.get("/info/").status_code == 404
            assert client.get("/prefix/api/health").json() == {"status": "ok"}
            page = client.get("/prefix/admin/login/")
            assert page.status_code == 200 and 'action="/prefix/admin/login/' in page.text


def test_interface_asgi(project_env, tmp_path):
    with django_server(project_env, tmp_path, "--interface", "asgi") as srv:
        out = wait_until(srv.logged("Options:"), what=srv.output)
        assert "Serving Django testproject (ASGI for HTTP, WebSocket and lifespan: --interface asgi)" in out
        assert "Django's ASGI handler serves this app" not in out  # the user chose this path knowingly
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            assert client.get("/info/").json()["via"] == "asgi"
            assert client.get("/async/").json()["via"] == "asgi"
            assert client.get("/stream-async/?n=2").text == "achunk 0\nachunk 1\n"


def test_granian_command_line_with_the_program_name_swapped(project_env, tmp_path, static_root):
    """The seed's compose command, `granian --interface asgi ... config.asgi:application`, with
    django-granian: it serves the project (static files included) and points at the fast path."""
    args = ["--interface", "asgi", "--static-path-route", "/static", "--static-path-mount", str(static_root),
            "testproject.asgi:application"]
    env = {**project_env, "DJANGO_SETTINGS_MODULE": "testproject.settings"}
    with start_server(args, env=env, tmp_path=tmp_path, cwd=ROOT / "testproject") as srv:
        out = wait_until(srv.logged("Django's ASGI handler serves this app"), what=srv.output)
        assert "manage.py granian" in out
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            assert client.get("/api/health").json() == {"status": "ok"}
            assert client.get("/info/").json()["via"] == "asgi"
            page = client.get("/admin/login/")
            css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.text)
            assert css and client.get(css.group(1)).status_code == 200


@pytest.mark.parametrize("interface", ["auto", "wsgi", "asgi"])
def test_async_server_sent_events_are_streamed(project_env, tmp_path, interface):
    """An async-generator StreamingHttpResponse: the first event arrives while the view is still
    waiting to produce the second (under a plain WSGI server Django would collect the whole stream
    before sending a byte), then the stream ends normally."""
    with django_server(project_env, tmp_path, "--interface", interface) as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            with client.stream("GET", "/events/") as r:
                assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
                lines = r.iter_lines()
                assert next(lines) == "data: first"
                assert client.get("/events/release/").json() == {"released": True}
                assert [line for line in lines if line] == ["data: second"]
            assert client.get("/api/health").status_code == 200


def test_async_stream_gives_its_thread_back_when_the_client_leaves(project_env, tmp_path):
    """A client that leaves an endless event stream frees the pool thread that was serving it (one
    thread here: the next request needs it)."""
    with django_server(project_env, tmp_path, "--blocking-threads", "1") as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as client:
            with client.stream("GET", "/events/") as r:
                assert next(r.iter_lines()) == "data: first"
            # the stream's connection is closed; its generator was waiting for a release that never comes
            assert client.get("/api/health", headers={"connection": "close"}).json() == {"status": "ok"}


def test_runserver_prod_alias(project_env, tmp_path):
    with django_server(project_env, tmp_path, command="runserver_prod") as srv:
        wait_until(srv.logged("fast path"), what=srv.output)
        r = httpx.get(srv.url + "/api/health", timeout=10)
        assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_settings_granian_applied(project_env, tmp_path):
    project_env["TESTPROJECT_GRANIAN"] = json.dumps({"http1_keep_alive": False, "blocking_threads": 3})
    with django_server(project_env, tmp_path) as srv:
        out = wait_until(srv.logged("Options:"), what=srv.output)
        assert "(fast path: HTTP via WSGI, 3 threads;" in out
        assert "--http1-keep-alive=False (settings.GRANIAN)" in out
        r = httpx.get(srv.url + "/api/health", timeout=10)
        assert r.headers["connection"] == "close"


def test_websocket_echo(project_env, tmp_path):
    websockets = pytest.importorskip("websockets")
    from websockets.asyncio.client import connect

    with django_server(project_env, tmp_path) as srv:
        async def talk() -> list:
            async with connect(f"ws://127.0.0.1:{srv.port}/ws/echo") as ws:
                await ws.send("hello")
                text = await ws.recv()
                await ws.send(b"\x00\x01")
                data = await ws.recv()
                return [text, data]

        assert asyncio.run(asyncio.wait_for(talk(), 10)) == ["hello", b"\x00\x01"]

        async def refused() -> int:
            try:
                async with connect(f"ws://127.0.0.1:{srv.port}/ws/nope"):
                    return 101
            except websockets.exceptions.InvalidStatus as exc:
                return exc.response.status_code

        # asgi.py closes unknown routes before accepting: the handshake is refused (ASGI: 403)
        assert asyncio.run(asyncio.wait_for(refused(), 10)) == 403


# -- new code after SIGHUP and --reload (the supervisor must not hold the project's modules) -----------
HEALTH_VIEW = '    return {"status": "ok"}'


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A private copy of testproject whose views a test may edit."""
    dest = tmp_path / "project"
    shutil.copytree(ROOT / "testproject", dest,
                    ignore=shutil.ignore_patterns("staticfiles", "db.sqlite3", "__pycache__"))
    assert HEALTH_VIEW in (dest / "demo" / "api.py").read_text()
    return dest


def set_health(project: Path, text: str) -> None:
    api = project / "demo" / "api.py"
    source = re.sub(r'(?m)^    return \{"status":.*$', text, api.read_text())
    api.write_text(source)


def statuses(url: str, n: int = 8) -> set:
    """/api/health over ``n`` new connections (the workers share the socket: any of them may answer)."""
    out = set()
    for _ in range(n):
        r = httpx.get(url + "/api/health", timeout=10, headers={"connection": "close"})
        out.add(r.json().get("status") if r.status_code == 200 else r.status_code)
    return out


def test_sighup_serves_the_deployed_code(project_env, tmp_path, project_copy):
    cmd = [sys.executable, str(project_copy / "manage.py"), "granian"]
    args = ["--workers", "2", "--access-log-fmt", "canary-2026 %(status)d"]
    with start_server(args, env=project_env, tmp_path=tmp_path, cwd=project_copy, cmd=cmd) as srv:
        out = wait_until(srv.logged("Workers are accepting connections"), what=srv.output)
        # manage.py replaced itself with a fresh supervisor: same PID, so signals reach it
        assert f"Supervisor pid {srv.proc.pid}:" in out, out
        # the resolved options were handed over through a pipe, not left in the process's environment
        proc = Path(f"/proc/{srv.proc.pid}")
        assert b"canary-2026" not in (proc / "environ").read_bytes()
        assert b"canary-2026" not in (proc / "cmdline").read_bytes()
        assert (proc / "cmdline").read_bytes().split(b"\0")[-2] == b"django_granian.django.supervise"
        wait_until(srv.logged("worker-2 started (pid"), what=srv.output)
        assert statuses(srv.url) == {"ok"}
        set_health(project_copy, '    return {"status": "deployed"}')
        # both workers imported the views when they started: nothing changes until we say so
        assert statuses(srv.url) == {"ok"}
        srv.proc.send_signal(signal.SIGHUP)
        wait_until(srv.logged("replaces worker-2"), 30, what=srv.output)
        wait_until(lambda: statuses(srv.url) == {"deployed"}, 30, 0.1)
        assert srv.stop() == 0


def test_reload_serves_edits_and_keeps_serving_through_a_broken_view(project_env, tmp_path, project_copy):
    cmd = [sys.executable, str(project_copy / "manage.py"), "granian"]
    args = ["--reload", "--reload-tick", "20"]
    with start_server(args, env=project_env, tmp_path=tmp_path, cwd=project_copy, cmd=cmd) as srv:
        wait_until(srv.logged("Workers are accepting connections"), what=srv.output)
        assert statuses(srv.url, 2) == {"ok"}
        set_health(project_copy, '    return {"status": "edited"}')
        wait_until(lambda: statuses(srv.url) == {"edited"}, 30, 0.1)
        # a view module that no longer imports: the new worker fails to start, the running one stays
        set_health(project_copy, '    return {"status": "broken"')
        wait_until(srv.logged("failed to start"), 30, what=srv.output)
        assert "SyntaxError" in srv.output()
        assert statuses(srv.url, 2) == {"edited"}
        set_health(project_copy, '    return {"status": "fixed"}')
        wait_until(lambda: statuses(srv.url) == {"fixed"}, 30, 0.1)
        assert srv.stop() == 0


@pytest.mark.parametrize(("argv", "options"), [
    (["python", "manage.py", "granian"], []),
    (["python", "-u", "manage.py", "granian", "-u"], ["-u"]),
    (["python3", "-X", "dev", "-Wdefault", "-O", "manage.py", "granian"], ["-X", "dev", "-Wdefault", "-O"]),
    (["python", "-W", "error", "-m", "django", "granian"], ["-W", "error"]),
    (["python", "-c", "import x"], []),
    (["python", "-X"], []),
])
def test_supervisor_keeps_interpreter_options(argv, options):
    assert interpreter_options(argv) == options
