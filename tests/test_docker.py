"""docker/ and deploy/k8s/ without a Docker engine.

Static checks: the compose file validates against the compose-spec JSON schema, its command and
environment (and the Dockerfile's, the k8s Deployment's, .env.example's) parse with django-granian's
own option parser, paths they reference exist, timeouts are consistent, probes point at served paths.

Real run (``test_dockerfile_steps_run_outside_docker``): the Dockerfile's builder-stage COPY/RUN
lines are executed for real in a temporary "image root" with a fresh virtualenv (the same
docker/steps.sh the image runs), then the runtime stage's CMD is started with its ENV, and HTTP
requests, the HEALTHCHECK command and the probe paths are checked against it. Set
SKIP_DOCKER_STEPS=1 to skip that one (it installs packages: ~30-90 s with a warm pip cache).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from django_granian.cli import build_parser, collect_values
from django_granian.config import OPTIONS, Config

from .conftest import free_port, wait_for_port

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
K8S = ROOT / "deploy" / "k8s"
SCHEMA_CANDIDATES = [ROOT.parent / "shared" / "schemas" / "compose-spec.json",
                     Path("/work/shared/schemas/compose-spec.json")]
# docker-compose 1.29.2's own schema, vendored (tests/schemas/README.md)
COMPOSE_129_SCHEMA = Path(__file__).resolve().parent / "schemas" / "docker-compose-1.29.2-compose_spec.json"
COMPOSE_FILES = sorted(DOCKER.glob("compose*.yaml"))


# --- a small Dockerfile reader ----------------------------------------------------------------------

@dataclass
class Instruction:
    op: str
    args: str
    lineno: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, op: str) -> list[Instruction]:
        return [i for i in self.instructions if i.op == op]


def parse_dockerfile(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) with line continuations joined and comments dropped."""
    logical: list[tuple[int, str]] = []
    buf, start = "", 0
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.rstrip()
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue
        if not buf:
            start = lineno
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append((start, buf + line))
        buf = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for lineno, text in logical:
        op, _, args = text.strip().partition(" ")
        op, args = op.upper(), args.strip()
        if op == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", args, re.I)
            assert m, f"Dockerfile:{lineno}: bad FROM"
            stages.append(Stage(m.group(1), m.group(2)))
        elif not stages:
            assert op == "ARG", f"Dockerfile:{lineno}: only ARG may precede FROM"
            name, _, default = args.partition("=")
            global_args[name] = default.strip('"')
        else:
            stages[-1].instructions.append(Instruction(op, args, lineno))
    return global_args, stages


def substitute(text: str, env: dict[str, str]) -> str:
    """Dockerfile variable substitution: $VAR, ${VAR}, ${VAR:-default}."""

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        default = m.group(3)
        value = env.get(name, "")
        return value if value or default is None else default

    return re.sub(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})", repl, text)


def parse_assignments(args: str) -> list[tuple[str, str]]:
    """ENV/ARG ``a=1 b="x y"`` pairs (values keep unexpanded variables)."""
    import shlex

    lexer = shlex.shlex(args, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    out = []
    for word in lexer:
        name, sep, value = word.partition("=")
        out.append((name, value if sep else ""))
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), "expected exec form JSON array"
    return value


def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile(DOCKER / "Dockerfile")


def runtime_env(stage: Stage, base: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    for ins in stage.all("ENV"):
        for name, value in parse_assignments(ins.args):
            env[name] = substitute(value, env)
    return env


def granian_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("GRANIAN_")}


def parse_with_our_options(args: list[str], env: dict[str, str]) -> Config:
    """Parse flags + GRANIAN_* variables exactly like the CLI does (unknown names fail)."""
    unknown = sorted(k for k in env if k.startswith("GRANIAN_") and k[8:].lower() not in OPTIONS)
    assert not unknown, f"not django-granian options: {unknown}"
    parser = build_parser()
    ns = parser.parse_args([*args, "app:app"])
    values = collect_values(vars(ns), env)
    return Config(**{k: v for k, (v, _) in values.items()}).validate()


def granian_args(command: list[str]) -> list[str]:
    """The flags after `manage.py granian` / `django-granian` in a command line."""
    for i, word in enumerate(command):
        if word == "granian" and i and command[i - 1].endswith("manage.py"):
            return command[i + 1:]
        if word in ("django-granian",) or (word == "django_granian" and i and command[i - 1] == "-m"):
            return [w for w in command[i + 1:] if ":" not in w]
    raise AssertionError(f"{command} does not run django-granian")


def seconds(text: str | int | float) -> float:
    if isinstance(text, (int, float)):
        return float(text)
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", text):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


# --- Dockerfile -------------------------------------------------------------------------------------

def test_dockerfile_is_multistage_slim_nonroot_with_healthcheck_and_exec_cmd() -> None:
    global_args, stages = dockerfile()
    assert len(stages) >= 2, "builder + runtime stages"
    for stage in stages:
        assert re.fullmatch(r"python:[^ ]+-slim", substitute(stage.base, global_args)), stage.base
    runtime = stages[-1]
    assert any(c.args.startswith("--from=") for c in runtime.all("COPY")), "runtime copies from the builder"
    users = runtime.all("USER")
    assert users and users[-1].args.split(":")[0] not in ("root", "0"), "must run as a non-root user"
    assert [s.args for s in runtime.all("STOPSIGNAL")] == ["SIGTERM"]
    cmd = exec_form(runtime.all("CMD")[-1].args)
    assert cmd[:3] == ["python", "manage.py", "granian"], cmd
    health = runtime.all("HEALTHCHECK")
    assert health and "CMD [" in health[-1].args
    health_cmd = exec_form(health[-1].args.split("CMD", 1)[1].strip())
    assert health_cmd[0] == "python" and "curl" not in health[-1].args
    # the health check script is copied into the image from the build context
    copied = {substitute(i.args.split()[-1], {}) for i in runtime.all("COPY")}
    assert health_cmd[1] in copied
    env = runtime_env(runtime, {})
    parse_with_our_options(granian_args(cmd), granian_env(env))
    assert env["GRANIAN_HOST"] == "0.0.0.0"


def test_dockerfile_copy_sources_exist_and_runs_use_variables() -> None:
    global_args, stages = dockerfile()
    for stage in stages:
        args = dict(global_args)
        for ins in stage.instructions:
            if ins.op == "ARG":
                for name, value in parse_assignments(ins.args):
                    args[name] = value
            if ins.op == "COPY" and not ins.args.startswith("--from="):
                *sources, _dest = ins.args.split()
                for src in sources:
                    assert (ROOT / substitute(src, args)).exists(), f"Dockerfile:{ins.lineno}: {src} missing"
            if ins.op == "RUN" and stage is not stages[-1]:
                # paths behind variables, so the test can run the very same lines elsewhere
                command = re.sub(r"--mount=\S+", "", ins.args)
                assert not re.search(r"(?<![\w$}])/(opt|src|app|data)\b", command), \
                    f"Dockerfile:{ins.lineno}: use $VENV/$SRC_DIR/$APP_DIR instead of literal paths"
    steps = (DOCKER / "steps.sh").read_text()
    assert "collectstatic" in steps and "pip install" in steps
    assert "steps.sh" in " ".join(i.args for i in stages[0].all("RUN"))


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().split()
    for must in ("**/.venv", "**/.git", "testproject/staticfiles", "testproject/db.sqlite3"):
        assert must in ignore


# --- compose ----------------------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def compose_interpolate(value: Any) -> Any:
    """Compose-style ${VAR:-default} with an empty environment (the defaults)."""
    if isinstance(value, str):
        return substitute(value.replace("$$", "\0"), {}).replace("\0", "$")
    if isinstance(value, list):
        return [compose_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: compose_interpolate(v) for k, v in value.items()}
    return value


def test_compose_files_are_found() -> None:
    names = [p.name for p in COMPOSE_FILES]
    assert names == ["compose.https.yaml", "compose.postgres.yaml", "compose.yaml"], names
    assert not list(DOCKER.glob("*compose*.yml")), "name compose files *.yaml so that the tests find them"


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_validates_against_compose_spec_schema(path: Path) -> None:
    schema_path = next((p for p in SCHEMA_CANDIDATES if p.exists()), None)
    if schema_path is None:
        pytest.skip("compose-spec schema not found at ../shared/schemas/compose-spec.json (beside the checkout)")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(schema_path.read_text())
    data = yaml.safe_load(path.read_text())
    validator = jsonschema.Draft7Validator(schema)  # the schema's $schema is draft-07
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
    assert not errors, "\n".join(errors)
    # and the validator really rejects nonsense (the test can fail)
    broken = json.loads(json.dumps(data))
    broken["services"]["app"]["stop_grace_period"] = {"seconds": 35}
    assert not validator.is_valid(broken)


# docker-compose 1.29 interpolates, then converts these fields to numbers before validating
# (compose/config/interpolation.py, ConversionMap; the ones a template could put a variable in)
_COMPOSE_129_INTS = [("deploy", "replicas"), ("healthcheck", "retries"), ("scale",)]


def compose_129_view(data: dict[str, Any]) -> dict[str, Any]:
    """The file as docker-compose 1.29 validates it: variables at their defaults, numbers converted."""
    data = compose_interpolate(data)
    for service in data.get("services", {}).values():
        for path in _COMPOSE_129_INTS:
            node = service
            for key in path[:-1]:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict) and isinstance(node.get(path[-1]), str):
                node[path[-1]] = int(node[path[-1]])
    return data


def compose_129_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft4Validator(json.loads(COMPOSE_129_SCHEMA.read_text()))  # as docker-compose does


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_are_accepted_by_docker_compose_1_29(path: Path) -> None:
    """Debian's and Ubuntu's docker-compose 1.29 read the templates too (docs/howto/compose.md)."""
    data = yaml.safe_load(path.read_text())
    # the compose-spec additions that 1.29 rejects, named so that a failure says what to change
    assert "name" not in data, "top-level `name`: set COMPOSE_PROJECT_NAME in .env instead"
    for name, service in data["services"].items():
        env_files = service.get("env_file", [])
        for entry in [env_files] if isinstance(env_files, str) else env_files:
            assert isinstance(entry, str), f"{name}: env_file entries must be plain paths, not {entry!r}"
        for dep, spec in (service.get("depends_on") or {}).items() if isinstance(service.get("depends_on"),
                                                                                  dict) else ():
            assert "required" not in spec, f"{name}: depends_on.{dep}.required (use an override file)"
    validator = compose_129_validator()
    view = compose_129_view(data)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(view)]
    assert not errors, "\n".join(errors)


def test_the_docker_compose_1_29_schema_rejects_the_forms_it_does_not_know() -> None:
    """The check above can fail: the v2-only forms the templates used before are errors for 1.29."""
    validator = compose_129_validator()
    data = compose_129_view(compose())
    assert validator.is_valid(data)
    for change in (
        lambda d: d.update(name="django-granian-example"),
        lambda d: d["services"]["app"].update(env_file=[{"path": ".env", "required": False}]),
        lambda d: d["services"]["app"].update(
            depends_on={"db": {"condition": "service_healthy", "required": False}}),
    ):
        broken = json.loads(json.dumps(data))
        change(broken)
        assert not validator.is_valid(broken), broken


@pytest.mark.parametrize("files", [["compose.yaml"], ["compose.https.yaml"], ["compose.yaml", "compose.postgres.yaml"]],
                         ids=lambda f: "+".join(f))
def test_a_real_docker_compose_accepts_the_templates(files: list[str], tmp_path: Path) -> None:
    """`docker-compose config -q` with a docker-compose on PATH (or DOCKER_COMPOSE=/path/to/it); it
    needs no Docker engine. Skipped where there is none (the schema tests above still run)."""
    exe = os.environ.get("DOCKER_COMPOSE") or shutil.which("docker-compose")
    if not exe:
        pytest.skip("no docker-compose on PATH (set DOCKER_COMPOSE=/path/to/docker-compose)")
    shutil.copytree(DOCKER, tmp_path / "docker")  # the context `..` is then tmp_path
    shutil.copy(DOCKER / ".env.example", tmp_path / "docker" / ".env")
    args = [a for f in files for a in ("-f", f)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run([exe, *args, "config", "-q"], cwd=tmp_path / "docker", env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_app_service_serves_everything_without_nginx() -> None:
    data = compose()
    services = data["services"]
    assert not any("nginx" in str(s.get("image", "")) or name == "nginx" for name, s in services.items())
    app = services["app"]
    assert "container_name" not in app, "a fixed container_name prevents scaling out"
    assert app["build"]["dockerfile"] == "docker/Dockerfile"
    assert (DOCKER / app["build"]["context"] / app["build"]["dockerfile"]).resolve() == DOCKER / "Dockerfile"
    assert app["restart"] in ("unless-stopped", "always", "on-failure")
    assert app["stop_signal"] == "SIGTERM"
    assert compose_interpolate(app["deploy"]["replicas"]) == "1"
    assert app["healthcheck"]["test"][0] == "CMD"
    # TLS certificates come from a mounted directory that exists in the repo
    binds = [v for v in app["volumes"] if isinstance(v, dict) and v.get("type") == "bind"]
    for bind in binds:
        assert (DOCKER / compose_interpolate(bind["source"])).is_dir(), bind
    assert any(b["target"] == "/certs" and b.get("read_only") for b in binds)
    assert app["env_file"] == [".env"] and (DOCKER / ".env.example").is_file()
    assert list(services) == ["app"], "the database is in compose.postgres.yaml"


def test_postgres_override_adds_a_database_the_app_waits_for() -> None:
    data = yaml.safe_load((DOCKER / "compose.postgres.yaml").read_text())
    services = data["services"]
    db, app = services["db"], services["app"]
    assert db["image"].startswith("postgres:") and "build" not in app and "image" not in app  # an override
    assert app["depends_on"] == {"db": {"condition": "service_healthy"}} and db["healthcheck"]["test"]
    assert [v.split(":")[0] for v in db["volumes"]] == list(data["volumes"]) == ["pgdata"]
    url = compose_interpolate(app["environment"]["DATABASE_URL"])
    env = compose_interpolate(db["environment"])
    assert url == f"postgres://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@db:5432/{env['POSTGRES_DB']}"
    # .env.example and the docs name the same files
    example = (DOCKER / ".env.example").read_text()
    assert "# COMPOSE_FILE=compose.yaml:compose.postgres.yaml" in example
    assert "COMPOSE_PROJECT_NAME=" in example
    assert "docker compose -f compose.yaml -f compose.postgres.yaml up -d --build" in (
        ROOT / "docs" / "howto" / "compose.md").read_text()


def test_compose_command_and_environment_parse_with_our_options() -> None:
    app = compose()["services"]["app"]
    env = {k: str(v) for k, v in compose_interpolate(app["environment"]).items()}
    config = parse_with_our_options(granian_args(app["command"]), granian_env(env))
    assert config.access_log is True
    assert config.host == "0.0.0.0" and config.port == 8000
    ports = compose_interpolate(app["ports"])
    assert ports == [f"8000:{config.port}"]
    # stop_grace_period covers graceful shutdown plus the supervisor's worker kill margin
    assert seconds(app["stop_grace_period"]) > config.kill_timeout >= config.graceful_timeout
    # the health check looks at the path the Dockerfile's HEALTHCHECK uses and on the same script
    _, stages = dockerfile()
    health = stages[-1].all("HEALTHCHECK")[-1].args
    assert exec_form(health.split("CMD", 1)[1].strip()) == app["healthcheck"]["test"][1:]
    assert env["HEALTHCHECK_PATH"] == runtime_env(stages[-1], {})["HEALTHCHECK_PATH"]


def test_https_compose_variant_publishes_80_and_443_with_the_acme_cache_on_a_volume() -> None:
    """docker/compose.https.yaml: automatic HTTPS (issue 15), validated like compose.yaml."""
    path = DOCKER / "compose.https.yaml"
    data = yaml.safe_load(path.read_text())
    schema_path = next((p for p in SCHEMA_CANDIDATES if p.exists()), None)
    if schema_path is not None:
        jsonschema = pytest.importorskip("jsonschema")
        validator = jsonschema.Draft7Validator(json.loads(schema_path.read_text()))
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
        assert not errors, "\n".join(errors)
    services = data["services"]
    assert list(services) == ["app"] and not any("nginx" in str(s.get("image", "")) for s in services.values())
    app = services["app"]
    env = {k: str(v) for k, v in compose_interpolate(app["environment"]).items()}
    config = parse_with_our_options(granian_args(app["command"]), granian_env(env))
    assert config.acme_domain == ["example.com", "www.example.com"] and config.acme_email == "ops@example.com"
    assert config.port == 443 and config.http_redirect_port == 80 and config.acme_challenge_type == "http-01"
    assert config.acme_directory.startswith("https://acme-v02.api.letsencrypt.org/")
    assert config.hsts == "max-age=300"
    assert compose_interpolate(app["ports"]) == ["80:80", "443:443", "443:443/udp"]
    assert config.http3 and config.http3_port is None  # HTTP/3 on the same port number, over UDP
    # the cache directory is on a named volume
    mounts = {v.split(":")[1]: v.split(":")[0] for v in app["volumes"] if isinstance(v, str)}
    volume = next(name for target, name in mounts.items() if config.acme_cache_dir.startswith(target + "/"))
    assert volume in data["volumes"]
    assert int(app["sysctls"]["net.ipv4.ip_unprivileged_port_start"]) <= 80  # non-root user binds 80/443
    assert seconds(app["stop_grace_period"]) > config.kill_timeout
    # same image and health check as the plain template; the check speaks HTTPS because ACME is on
    plain = compose()["services"]["app"]
    assert app["build"] == plain["build"] and app["healthcheck"]["test"] == plain["healthcheck"]["test"]
    assert "GRANIAN_ACME_DOMAIN" in (DOCKER / "healthcheck.py").read_text()


def test_env_example_uses_only_our_option_names() -> None:
    env = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        line = line.strip()
        if line.startswith("#"):
            # commented-out GRANIAN_ lines must be valid too once uncommented
            line = line.lstrip("# ")
            if not re.match(r"GRANIAN_[A-Z0-9_]+=", line):
                continue
        if "=" in line:
            name, _, value = line.partition("=")
            env[name] = value
    g = granian_env(env)
    assert "GRANIAN_SSL_CERTIFICATE" in g and "GRANIAN_SSL_KEYFILE" in g
    g.pop("GRANIAN_SSL_CERTIFICATE")
    g.pop("GRANIAN_SSL_KEYFILE")  # files that exist only inside the container
    config = parse_with_our_options([], g)
    assert config.workers_max_requests == 10000 and config.respawn_failed_workers is True


def test_bad_option_names_are_caught() -> None:
    with pytest.raises(AssertionError):
        parse_with_our_options([], {"GRANIAN_WORKERZ": "2"})
    with pytest.raises(SystemExit):
        parse_with_our_options(["--graceful-timout", "3"], {})


# --- Kubernetes -------------------------------------------------------------------------------------

def k8s_docs() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[doc["kind"]] = doc
    return docs


def test_k8s_manifests_are_consistent() -> None:
    docs = k8s_docs()
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Kustomization"} <= set(docs)
    kustomization = docs["Kustomization"]
    for res in kustomization["resources"]:
        assert (K8S / res).is_file(), res
    dep = docs["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service"]["spec"]["selector"].items() <= labels.items()
    hpa = docs["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    (container,) = pod["containers"]
    assert container["resources"]["requests"]["cpu"]  # HPA utilisation needs a CPU request
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    config = parse_with_our_options([], granian_env(env))
    assert config.forwarded_allow_ips, "behind the platform load balancer: trust its X-Forwarded-* headers"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == config.port and ports["metrics"] == config.metrics_port
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ("http", config.port)
    prestop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert prestop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > float(prestop[1]) + config.kill_timeout
    assert pod["securityContext"]["runAsNonRoot"] is True
    _, stages = dockerfile()
    assert pod["securityContext"]["runAsUser"] == 10001
    assert "--uid 10001" in stages[-1].all("RUN")[0].args
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def served_paths() -> set[str]:
    """Paths the probes, compose and Dockerfile health checks use."""
    docs = k8s_docs()
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    paths = {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")}
    paths.add(compose()["services"]["app"]["environment"]["HEALTHCHECK_PATH"])
    _, stages = dockerfile()
    paths.add(runtime_env(stages[-1], {})["HEALTHCHECK_PATH"])
    return paths


# --- the Dockerfile, run for real outside Docker ---------------------------------------------------

def http_get(url: str) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


IMAGE_ROOTS = ("/opt", "/src", "/app", "/data", "/usr/local/lib/django-granian")


class ImageRoot:
    """Maps the image's absolute paths into a temporary directory."""

    def __init__(self, root: Path):
        self.root = root

    def map(self, value: str) -> str:
        parts = value.split(":")
        out = []
        for part in parts:
            if any(part == r or part.startswith(r + "/") for r in IMAGE_ROOTS):
                part = str(self.root) + part
            out.append(part)
        return ":".join(out)


def _ignored(rel: str, patterns: list[str]) -> bool:
    for pat in patterns:
        pat = pat.removeprefix("**/")
        if fnmatch.fnmatch(rel, pat) or any(fnmatch.fnmatch(part, pat) for part in rel.split("/")):
            return True
    return False


def _copy(src: Path, dest: Path, patterns: list[str]) -> None:
    if src.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        return
    for path in src.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if _ignored(rel, patterns) or not path.is_file():
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def run_build_stage(stage: Stage, global_args: dict[str, str], image: ImageRoot, base_env: dict[str, str],
                    log: Path) -> None:
    patterns = [p for p in (DOCKER / "Dockerfile.dockerignore").read_text().split() if not p.startswith("#")]
    env = dict(base_env)
    args = dict(global_args)
    workdir = image.root
    for ins in stage.instructions:
        if ins.op == "ARG":
            for name, value in parse_assignments(ins.args):
                args[name] = value
                env.setdefault(name, value)
        elif ins.op == "ENV":
            for name, value in parse_assignments(ins.args):
                env[name] = image.map(substitute(value, {**args, **env}))
        elif ins.op == "WORKDIR":
            workdir = Path(image.map(substitute(ins.args, {**args, **env})))
            workdir.mkdir(parents=True, exist_ok=True)
        elif ins.op == "COPY":
            *sources, dest = (substitute(w, {**args, **env}) for w in ins.args.split())
            dest_path = Path(image.map(dest)) if dest.startswith("/") else workdir / dest
            for src in sources:
                target = dest_path / Path(src).name if dest.endswith("/") and Path(ROOT / src).is_file() \
                    else dest_path
                _copy(ROOT / src, target, patterns)
        elif ins.op == "RUN":
            command = re.sub(r"--mount=\S+\s*", "", ins.args)
            with open(log, "ab") as out:
                out.write(f"\n$ {command}\n".encode())
                out.flush()
                result = subprocess.run(["sh", "-ec", command], cwd=workdir, env=env, stdout=out,
                                        stderr=subprocess.STDOUT, timeout=300)
            assert result.returncode == 0, f"Dockerfile:{ins.lineno} failed:\n{log.read_text()[-4000:]}"


@pytest.mark.timeout(300)
def test_dockerfile_steps_run_outside_docker(tmp_path: Path) -> None:
    if os.environ.get("SKIP_DOCKER_STEPS") == "1":
        pytest.skip("SKIP_DOCKER_STEPS=1")
    global_args, stages = dockerfile()
    image = ImageRoot(tmp_path / "image")
    image.root.mkdir()
    log = tmp_path / "build.log"
    python_dir = str(Path(sys.executable).parent)
    base_env = {
        "PATH": os.pathsep.join([python_dir, os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    for name in ("PIP_CACHE_DIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE",
                 "TMPDIR", "XDG_CACHE_HOME"):
        if name in os.environ:
            base_env[name] = os.environ[name]
    for stage in stages[:-1]:
        run_build_stage(stage, global_args, image, base_env, log)

    # the runtime stage: COPY --from=builder is a no-op here (same image root), ENV + WORKDIR + CMD
    runtime = stages[-1]
    for ins in runtime.all("COPY"):
        if not ins.args.startswith("--from="):
            src, dest = ins.args.split()
            _copy(ROOT / src, Path(image.map(dest)), [])
    env = {k: image.map(v) for k, v in runtime_env(runtime, dict(base_env)).items()}
    for value in env.values():  # directories the runtime stage's RUN would create (e.g. /data)
        if value.startswith(str(image.root)) and not Path(value).exists():
            Path(value).parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(image.map(substitute(runtime.all("WORKDIR")[-1].args, env)))
    venv_python = Path(env["VENV"]) / "bin" / "python"
    # the package comes from the fresh virtualenv, not from this checkout
    where = subprocess.run([str(venv_python), "-c", "import django_granian; print(django_granian.__file__)"],
                           env=env, cwd=workdir, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(env["VENV"]), where.stdout + where.stderr
    assert (workdir / "staticfiles" / "staticfiles.json").is_file(), "collectstatic ran with the manifest storage"

    port = free_port()
    env.update(GRANIAN_HOST="127.0.0.1", GRANIAN_PORT=str(port), PYTHONUNBUFFERED="1")
    cmd = exec_form(runtime.all("CMD")[-1].args)
    server_log = tmp_path / "server.log"
    with open(server_log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        try:
            wait_for_port("127.0.0.1", port, proc, timeout=60)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{server_log.read_text()}") from None
        base = f"http://127.0.0.1:{port}"
        for path in sorted(served_paths()):
            status, _, body = http_get(base + path)
            assert status == 200, f"probe/health path {path}: {status} {body[:200]!r}\n{server_log.read_text()}"
        assert json.loads(http_get(base + "/api/health")[2]) == {"status": "ok"}
        # STATIC_ROOT (collected at build time) is served by the server itself: DEBUG is off, so
        # Django would not serve it
        manifest = json.loads((workdir / "staticfiles" / "staticfiles.json").read_text())
        hashed = manifest["paths"]["admin/css/base.css"]
        status, headers, body = http_get(f"{base}/static/{hashed}")
        assert status == 200, f"static file {hashed}: {status}\n{server_log.read_text()}"
        assert headers["content-type"].startswith("text/css") and b"body" in body
        health = stages[-1].all("HEALTHCHECK")[-1].args
        health_cmd = [image.map(w) for w in exec_form(health.split("CMD", 1)[1].strip())]
        result = subprocess.run(health_cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        # SIGTERM (the image's STOPSIGNAL) stops the server gracefully and in time
        assert runtime.all("STOPSIGNAL")[-1].args == "SIGTERM"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=float(env["GRANIAN_GRACEFUL_TIMEOUT"]) + 10)
        assert code == 0, server_log.read_text()
        assert time.monotonic() - started < float(env["GRANIAN_GRACEFUL_TIMEOUT"])
        # and the health check now reports the server as down
        result = subprocess.run(health_cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=30)
        assert result.returncode == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
