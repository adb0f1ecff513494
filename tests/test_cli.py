"""The CLI: every option from the command line and from GRANIAN_* env, validation messages, banner."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys

import httpx
import pytest

from django_granian import __version__
from django_granian.cli import build_parser, config_from_args
from django_granian.config import OPTIONS, Config, ConfigError

from .conftest import ROOT, free_port, start_server
from .core_client import wait_until

SAMPLES = {"int": "1000", "float": "2.5", "size": "2k", "octal": "660", "workers": "3", "str": "x"}
EXPECTED = {"int": 1000, "float": 2.5, "size": 2048, "octal": 0o660, "workers": 3, "str": "x"}


def sample(name: str, tmp_path) -> tuple[list[str], object]:
    """A valid command-line value for an option and the Config value it must produce."""
    opt = OPTIONS[name]
    if name == "url_path_prefix":
        return [opt.flag, "/x"], "/x"
    if name == "static_path_route":
        return [opt.flag, "/a", opt.flag, "/b"], ["/a", "/b"]
    if name == "acme_domain":
        return [opt.flag, "a.example", opt.flag, "b.example"], ["a.example", "b.example"]
    if name == "acme_email":
        return [opt.flag, "ops@example.com"], "ops@example.com"
    if name == "acme_directory":
        return [opt.flag, "https://acme.example/dir"], "https://acme.example/dir"
    if name == "hsts":
        return [opt.flag, "max-age=60; includeSubDomains"], "max-age=60; includeSubDomains"
    if name == "forwarded_allow_ips":
        return [opt.flag, "10.0.0.0/8", opt.flag, "127.0.0.1"], ["10.0.0.0/8", "127.0.0.1"]
    if name in LIST_SAMPLES:
        values = [v.format(dir=tmp_path) for v in LIST_SAMPLES[name]]
        return [arg for v in values for arg in (opt.flag, v)], values
    if name == "media_path_route":
        return [opt.flag, "/m"], "/m"
    if name == "config":
        path = tmp_path / "site.toml"
        path.write_text("# no options\n")
        return [opt.flag, str(path)], str(path)
    if opt.kind == "bool":
        return [opt.flag], True
    if opt.kind == "choice":
        value = opt.choices[-1]
        return [opt.flag, value], value
    if opt.kind == "list":
        return [opt.flag, "a", opt.flag, "b"], ["a", "b"]
    if opt.kind == "file":
        path = tmp_path / f"{name}.json"
        path.write_text("{}")
        return [opt.flag, str(path)], str(path)
    if opt.kind in ("dir", "path"):
        return [opt.flag, str(tmp_path)], str(tmp_path)
    raw = SAMPLES[opt.kind]
    value = EXPECTED[opt.kind]
    if opt.minimum is not None and isinstance(value, (int, float)) and value < opt.minimum:
        raw, value = str(int(opt.minimum) + 1), int(opt.minimum) + 1
    if opt.maximum is not None and isinstance(value, (int, float)) and value > opt.maximum:
        raw, value = str(int(opt.maximum)), int(opt.maximum)
    return [opt.flag, raw], value


# list options whose values must be of a kind (routes, directories, codings, media types)
LIST_SAMPLES = {
    "x_accel_route": ["/a", "/b"], "x_accel_mount": ["{dir}", "{dir}"], "x_sendfile_root": ["{dir}", "{dir}"],
    "compress_encodings": ["gzip", "br"], "compress_types": ["text/a", "text/*"],
    "media_attachment_types": ["text/a", "text/*"],
}
# options whose sample value needs a companion option to validate
COMPANIONS = {
    "uds_permissions": ["--uds", "/tmp/x.sock"],
    "ssl_keyfile": ["--ssl-certificate", "{file}"],
    "ssl_certificate": ["--ssl-keyfile", "{file}"],
    "ssl_client_verify": ["--ssl-ca", "{file}"],
    "static_path_route": ["--static-path-mount", "{dir}", "--static-path-mount", "{dir}"],
    "static_path_mount": [],
    "http_redirect_port": ["--ssl-certificate", "{file}", "--ssl-keyfile", "{file}"],
    "hsts": ["--ssl-certificate", "{file}", "--ssl-keyfile", "{file}"],
    "x_accel_route": ["--x-accel-mount", "{dir}", "--x-accel-mount", "{dir}"],
    "x_accel_mount": ["--x-accel-route", "/a", "--x-accel-route", "/b"],
    "serve_media": ["--media-path-mount", "{dir}"],
    "http3": ["--ssl-certificate", "{file}", "--ssl-keyfile", "{file}"],
    "http3_port": ["--ssl-certificate", "{file}", "--ssl-keyfile", "{file}"],  # and --http3 (below)
}
NAMES = [n for n in OPTIONS if n != "app"]


@pytest.mark.parametrize("name", NAMES)
def test_every_option_from_command_line_and_env(name, tmp_path):
    args, expected = sample(name, tmp_path)
    if name == "static_path_mount":
        args = ["--static-path-mount", str(tmp_path), "--static-path-mount", str(tmp_path)]
        expected = [str(tmp_path), str(tmp_path)]
    if name == "log_config":
        (tmp_path / "log_config.json").write_text('{"version": 1}')
    extra_file = tmp_path / "extra.pem"
    extra_file.write_text("x")
    extra = [a.format(file=extra_file, dir=tmp_path) for a in COMPANIONS.get(name, [])]
    flags = ["--http3"] if name == "http3_port" else []  # a companion without a value
    config = config_from_args([*flags, *args, *extra, "app:app"], environ={})
    assert getattr(config, name) == expected
    assert config._sources[name] == "command line"  # type: ignore[attr-defined]

    # the same through GRANIAN_<NAME>
    opt = OPTIONS[name]
    if opt.kind == "bool":
        env_value = "true"
    elif opt.kind == "list":
        env_value = " ".join(expected)  # type: ignore[arg-type]
    else:
        env_value = args[-1]
    env = {opt.env: env_value}
    companion_env = {}
    for i in range(0, len(extra), 2):
        companion_env[OPTIONS[extra[i][2:].replace("-", "_")].env] = extra[i + 1]
    if name == "static_path_route":
        companion_env["GRANIAN_STATIC_PATH_MOUNT"] = f"{tmp_path} {tmp_path}"
    if name in ("x_accel_route", "x_accel_mount"):  # list companions: both values in one variable
        companion_env = {"GRANIAN_X_ACCEL_MOUNT": f"{tmp_path} {tmp_path}", "GRANIAN_X_ACCEL_ROUTE": "/a /b"}
        del companion_env[opt.env]
    if flags:
        companion_env["GRANIAN_HTTP3"] = "true"
    config = config_from_args(["app:app"], environ={**env, **companion_env})
    assert getattr(config, name) == expected
    assert config._sources[name] == "env"  # type: ignore[attr-defined]


def test_serve_media_outside_django_names_the_flag_to_use(tmp_path):
    with pytest.raises(ConfigError, match="--media-path-mount"):
        config_from_args(["--serve-media", "app:app"], environ={})


@pytest.mark.parametrize(("variable", "value", "name", "expected", "ours"), [
    ("GRANIAN_WEBSOCKETS", "false", "ws", False, "true"),
    ("GRANIAN_LOG_ENABLED", "0", "log", False, "1"),
    ("GRANIAN_LOG_ACCESS_ENABLED", "true", "access_log", True, "false"),
    ("GRANIAN_LOG_ACCESS_FMT", "%(status)d", "access_log_fmt", "%(status)d", "%(method)s"),
    ("GRANIAN_METRICS_ENABLED", "yes", "metrics", True, "no"),
])
def test_granian_variable_names(variable, value, name, expected, ours):
    """Granian names a few variables differently from their flags: a Granian compose file still works."""
    config = config_from_args(["app:app"], environ={variable: value})
    assert getattr(config, name) == expected
    assert config._sources[name] == "env"  # type: ignore[attr-defined]
    # our own name, derived from the flag, wins when both are set
    both = config_from_args(["app:app"], environ={variable: value, OPTIONS[name].env: ours})
    assert getattr(both, name) != expected


def test_every_granian_flag_and_variable_is_accepted():
    """Parity with the installed Granian (the bench extra): each of its flags parses here, and each of
    its environment variables sets the same option."""
    click = pytest.importorskip("click")
    granian_cli = pytest.importorskip("granian.cli")
    ours = {opt.flag: opt for opt in OPTIONS.values()}
    for param in granian_cli.cli.params:
        if not isinstance(param, click.Option):
            continue
        for flag in (*param.opts, *param.secondary_opts):
            if flag in ("--version", "--help") or not flag.startswith("--"):
                continue
            base = "--" + flag[5:] if flag.startswith("--no-") and flag not in ours else flag
            assert base in ours, f"Granian's {flag} is not accepted"
        flag = next(o for o in param.opts if o.startswith("--"))
        if flag == "--version":
            continue
        variable = param.envvar or f"GRANIAN_{param.name.upper()}"
        assert variable in ours[flag].envs, f"Granian's {variable} does not set {flag}"


def test_command_line_overrides_env():
    config = config_from_args(["--port", "9001", "app:app"], environ={"GRANIAN_PORT": "9000", "GRANIAN_HOST": "::"})
    assert config.port == 9001 and config.host == "::"


def test_app_from_env():
    assert config_from_args([], environ={"GRANIAN_APP": "mod:app"}).app == "mod:app"


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "abc"], "--port: invalid value 'abc'"),
    (["--port", "70000"], "--port: 70000 is above the maximum 65535"),
    (["--workers", "0"], "--workers: 0 is below the minimum 1"),
    (["--workers", "-2"], "--workers: -2 is below the minimum 1"),
    (["--interface", "cgi"], "--interface: invalid value 'cgi'"),
    (["--http", "3"], "--http: invalid value '3'"),
    (["--backlog", "10"], "--backlog: 10 is below the minimum 128"),
    (["--log-level", "loud"], "--log-level: invalid value 'loud'"),
    (["--ssl-certificate", "/nonexistent.pem"], "--ssl-certificate: invalid value '/nonexistent.pem': file"),
    (["--working-dir", "/nonexistent-dir"], "--working-dir: invalid value '/nonexistent-dir'"),
    (["--forwarded-allow-ips", "10.0.0.0/33"], "--forwarded-allow-ips: '10.0.0.0/33' is not an IP address"),
    (["--url-path-prefix", "api"], "--url-path-prefix must start with '/'"),
    (["--static-path-route", "/a", "--static-path-route", "/b", "--static-path-mount", "."],
     "must be given the same number of times"),
    (["--uds-permissions", "600"], "--uds-permissions needs --uds"),
    (["--limit-request-body", "10 parsecs"], "--limit-request-body: invalid value"),
])
def test_invalid_values_name_the_option(args, message):
    with pytest.raises(ConfigError) as info:
        config_from_args([*args, "app:app"], environ={})
    assert message in str(info.value)


def test_invalid_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="GRANIAN_PORT"):
        config_from_args(["app:app"], environ={"GRANIAN_PORT": "eighty"})


def test_settings_mapping_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown option 'wokers' in settings.*did you mean 'workers'"):
        Config.from_mapping({"wokers": 2}, source="settings")
    assert Config.from_mapping({"workers": "2", "http1-keep-alive": "false"}).http1_keep_alive is False


def run_cli(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'apps'}", **(env or {})}
    return subprocess.run([sys.executable, "-m", "django_granian", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=ROOT)


BAD_PEM = "not a certificate\n"


@pytest.mark.parametrize(("args", "env", "expected", "code"), [
    (["--prot", "8000", "hello_apps:app"], {}, "Error: unknown option --prot (did you mean --port?); see --help", 2),
    (["--no-such-flag", "hello_apps:app"], {}, "Error: unknown option --no-such-flag; see --help", 2),
    (["--wokers=2", "hello_apps:app"], {}, "Error: unknown option --wokers (did you mean --workers?); see --help", 2),
    (["--ssl-ke", "k.pem", "hello_apps:app"], {},
     "Error: ambiguous option --ssl-ke (could be --ssl-keyfile, --ssl-key or --ssl-keyfile-password); see --help", 2),
    (["hello_apps:app", "other:app"], {},
     "Error: unexpected argument 'other:app' (APP is given once; options start with --); see --help", 2),
    (["hello_apps:app", "--port"], {}, "Error: option --port needs a value; see --help", 2),
    (["--log=yes", "hello_apps:app"], {}, "Error: option --log takes no value (got --log=yes); see --help", 2),
    (["--port", "x", "hello_apps:app"], {}, "Error: --port: invalid value 'x': expected an integer", 2),
    (["--workers", "many", "hello_apps:app"], {}, "Error: --workers: invalid value 'many': expected an integer or auto",
     2),
    (["--port", "70000", "hello_apps:app"], {}, "Error: --port: 70000 is above the maximum 65535", 2),
    (["hello_apps:app"], {"GRANIAN_PORT": "eighty"},
     "Error: --port (from environment GRANIAN_PORT): invalid value 'eighty': expected an integer", 2),
    ([], {}, "Error: missing argument APP (module:attr, e.g. `django-granian --interface asgi app:app`); see --help",
     2),
    # the server's own start-up failures, with --no-log: still one line on stderr
    (["--no-log", "--interface", "asgi", "no_such_module_xyz:app"], {},
     "Error: could not import module 'no_such_module_xyz' (is the working directory right? use --working-dir)", 2),
    (["--no-log", "--interface", "asgi", "--log-level", "critical", "workers_app:app"], {"WORKERS_FAIL_STARTUP": "1"},
     "Error: Application startup failed: database is unreachable", 3),
])
def test_errors_are_one_line_with_one_prefix(args, env, expected, code):
    result = run_cli(*args, env=env)
    assert (result.returncode, result.stderr.splitlines()) == (code, [expected])
    assert result.stdout == ""


def test_fatal_errors_reach_stderr_with_no_log(tmp_path):
    """--no-log silences the log, never the reason the server did not start."""
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_cli("--no-log", "--interface", "asgi", "--port", str(port), "hello_apps:app")
    assert (result.returncode, result.stderr) == (2, f"Error: cannot bind to 127.0.0.1:{port}: Address already in use\n")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text(BAD_PEM)
    key.write_text(BAD_PEM)
    result = run_cli("--no-log", "--interface", "asgi", "--ssl-certificate", str(cert), "--ssl-keyfile", str(key),
                     "--port", "0", "hello_apps:app")
    assert (result.returncode, result.stderr) == (
        2, f"Error: --ssl-certificate {cert}: not a PEM file (no 'BEGIN CERTIFICATE' block)\n")
    # a supervised worker's failure is printed once, by the supervisor, with the worker's name
    result = run_cli("--no-log", "--workers", "2", "--interface", "asgi", "--port", "0", "no_such_module_xyz:app")
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert re.fullmatch(r"Error: worker-[12] \(pid \d+\) failed to start: could not import module "
                        r"'no_such_module_xyz' .*\n", result.stderr), result.stderr


def test_config_file_errors_use_the_same_prefix(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text("wokers = 2\n")
    result = run_cli("--config", str(path), "hello_apps:app")
    assert (result.returncode, result.stderr.splitlines()) == (
        2, [f"Error: unknown option 'wokers' in {path} (did you mean 'workers'?)"])


def test_manage_py_granian_errors_use_the_same_prefix():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args, expected, code in [
        (["--prot", "1"], "Error: unknown option --prot (did you mean --port?); see --help", 2),
        (["--workers", "x"], "Error: --workers: invalid value 'x': expected an integer or auto", 1),
        (["abc"], "Error: 'abc' is not a port number or HOST:PORT pair", 1),
    ]:
        result = subprocess.run([sys.executable, "manage.py", "granian", *args], capture_output=True, text=True,
                                timeout=60, env=env, cwd=ROOT / "testproject")
        assert (result.returncode, result.stderr.splitlines()) == (code, [expected])


def test_version_and_help():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"django-granian {__version__}"
    result = run_cli("--help")
    assert result.returncode == 0
    for opt in OPTIONS.values():
        if opt.name != "app":
            assert opt.flag in result.stdout, opt.flag
            assert opt.env in result.stdout.replace("\n", " ").replace("  ", ""), opt.env


def test_granian_boolean_pairs_exist():
    parser = build_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    for pair in ("--reload", "--no-reload", "--factory", "--no-factory", "--ssl-client-verify",
                 "--no-ssl-client-verify", "--respawn-failed-workers", "--no-respawn-failed-workers",
                 "--log", "--no-log", "--access-log", "--no-access-log", "--http1-keep-alive",
                 "--no-http1-keep-alive", "--ws", "--no-ws", "--metrics", "--no-metrics"):
        assert pair in flags


def test_console_script_and_module_entry_points():
    script = os.path.join(os.path.dirname(sys.executable), "django-granian")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and __version__ in result.stdout


def test_banner_lists_version_interface_address_loop_and_changed_options(server_factory):
    with server_factory(["--interface", "asgi", "--loop", "asyncio", "--keep-alive-timeout", "7",
                         "hello_apps:app"], env={"GRANIAN_BACKLOG": "256"}) as srv:
        assert httpx.get(srv.url).text == "Hello, world!"
        out = srv.output()
    assert f"django-granian {__version__}" in out
    assert "asyncio loop" in out
    assert f"Serving ASGI app hello_apps:app (HTTP/1.1 + HTTP/2) on http://127.0.0.1:{srv.port}" in out
    assert "--keep-alive-timeout=7.0 (command line)" in out
    assert "--backlog=256 (env)" in out


def test_log_level_warning_hides_banner(server_factory):
    with server_factory(["--interface", "wsgi", "--log-level", "warning", "hello_apps:wsgi"]) as srv:
        assert httpx.get(srv.url).text == "Hello, world!"
        out = srv.output()
    assert "Serving" not in out


def test_uvloop_is_the_default_loop(server_factory):
    with server_factory(["--interface", "asgi", "hello_apps:app"]) as srv:
        httpx.get(srv.url)
        assert "uvloop loop" in srv.output()


def test_working_dir_and_env_files(server_factory, tmp_path):
    app_dir = tmp_path / "proj"
    app_dir.mkdir()
    (app_dir / "envapp.py").write_text(
        "import os\n"
        "def app(environ, start_response):\n"
        "    body = os.environ.get('GREETING', 'unset').encode()\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [body]\n")
    env_file = tmp_path / "app.env"
    env_file.write_text("GREETING=hello-from-dotenv\n")
    with server_factory(["--interface", "wsgi", "--working-dir", str(app_dir), "--env-files", str(env_file),
                         "envapp:app"]) as srv:
        assert httpx.get(srv.url).text == "hello-from-dotenv"


def test_unix_domain_socket_with_permissions(server_factory, tmp_path):
    path = tmp_path / "srv.sock"
    with server_factory(["--interface", "asgi", "--uds", str(path), "--uds-permissions", "600", "hello_apps:app"],
                        wait=False) as srv:
        for _ in range(400):
            if path.exists():
                break
            assert srv.proc.poll() is None, srv.output()
            import time

            time.sleep(0.05)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport) as client:
            assert client.get("http://localhost/").text == "Hello, world!"
    assert not path.exists()  # removed on shutdown


def test_port_in_use_fails_clearly(server_factory):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_cli("--interface", "asgi", "--port", str(port), "hello_apps:app")
    assert result.returncode == 2
    assert f"cannot bind to 127.0.0.1:{port}" in result.stderr


def test_app_import_error_fails_clearly():
    result = run_cli("--interface", "asgi", "no_such_module_xyz:app")
    assert result.returncode != 0
    assert "could not import module 'no_such_module_xyz'" in result.stderr


# --- the architecture notes' command line (../shared/seeds/) ------------------------------------------------

SEEDS = ROOT.parent / "shared" / "seeds"  # next to the checkout on the project's machines; absent in a clean clone
SEED_HEADING = "### CLI 命令参考"  # "CLI command reference"


def seed_command_line() -> list[str]:
    """The ``granian ...`` command of the seed document's CLI reference block, as written."""
    if not SEEDS.is_dir():
        pytest.skip(f"{SEEDS} is absent (a clean clone elsewhere): the seed documents are not part of the repo")
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        if SEED_HEADING not in text:
            continue
        block = text.split(SEED_HEADING, 1)[1].split("```bash", 1)[1].split("```", 1)[0]
        import shlex

        return shlex.split(block.replace("\\\n", " "))
    pytest.skip(f"no seed document in {SEEDS} has the {SEED_HEADING!r} block")


def test_seed_command_line_aliases_parse():
    words = seed_command_line()
    assert words[0] == "granian"
    for alias in ("--websockets", "--log-access", "--ssl-cert", "--ssl-key"):
        assert alias in words


def test_seed_command_line_serves_https(tmp_path):
    """The seed's command line, with only the certificate/key paths (trustme), the app (a test app) and
    the address (a free 127.0.0.1 port) replaced, starts the real server, which answers over HTTPS."""
    trustme = pytest.importorskip("trustme")
    import ssl

    words = seed_command_line()
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    port = free_port()
    replace = {"/path/to/cert.pem": str(cert_path), "/path/to/key.pem": str(key_path), "main:app": "hello_apps:app",
               "8000": str(port), "0.0.0.0": "127.0.0.1"}
    args = [replace.get(w, w) for w in words[1:]]
    assert [w for w in args if w.startswith("-")] == [w for w in words[1:] if w.startswith("-")]  # flags as written
    config = config_from_args(args, environ={})
    assert (config.ws, config.access_log, config.ssl_certificate, config.ssl_keyfile) == (
        True, True, str(cert_path), str(key_path))
    with start_server(args, port=port, tmp_path=tmp_path) as srv:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        response = httpx.get(f"https://127.0.0.1:{port}/", verify=context)
        assert (response.status_code, response.text) == (200, "Hello, world!")
        wait_until(srv.logged('"GET / HTTP/1.1" 200'), 20, what=srv.output)  # --log-access took effect


def test_aliases_of_booleans_have_no_forms():
    assert config_from_args(["--no-websockets", "app:app"], environ={}).ws is False
    assert config_from_args(["--no-log-access", "--log-access", "app:app"], environ={}).access_log is True
    assert config_from_args(["--log-access", "--no-log-access", "app:app"], environ={}).access_log is False


# --- help ----------------------------------------------------------------------------------------------------

def test_long_help_has_a_short_synopsis_and_the_groups():
    result = run_cli("--help")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "usage: django-granian [OPTIONS] APP"
    assert lines[1] == ""
    for title in ("Binding:", "TLS:", "Workers and runtime:", "Logging:"):
        assert title in lines


def test_short_help_lists_the_most_used_options():
    result = run_cli("-h")
    assert result.returncode == 0
    out = result.stdout
    assert out.splitlines()[0] == "usage: django-granian [OPTIONS] APP"
    listed = [line.split()[0].rstrip(",") for line in out.splitlines() if line.startswith("  -")]
    assert 18 <= len(listed) <= 26, listed
    for flag in ("--port", "--workers", "--interface", "--ssl-certificate", "--reload", "-h", "--help"):
        assert flag in listed
    assert "--http2-max-frame-size" not in out  # the rest is in --help
    assert "django-granian --help" in out
    assert len(out.splitlines()) < 80
    assert "MISSING" not in out and "MISSING" not in run_cli("--help").stdout  # list options: no default shown
