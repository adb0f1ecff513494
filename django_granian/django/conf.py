"""Django settings -> :class:`~django_granian.config.Config`, remembering where each value came from.

Precedence, lowest first:

1. defaults derived from Django settings (``FORCE_SCRIPT_NAME``, ``STATIC_URL``/``STATIC_ROOT``,
   ``MEDIA_URL``/``MEDIA_ROOT`` with ``serve_media``, django-sendfile2's ``SENDFILE_*``) and from the
   machine (workers from CPUs and memory, threads);
2. ``settings.GRANIAN`` (a dict of option names -> values, the same names as the CLI flags);
3. the ``--config`` TOML file (``--config`` or ``GRANIAN_CONFIG``; same names);
4. ``GRANIAN_*`` environment variables;
5. the command line.

The sources end up in ``Config._sources`` so the startup banner can say where every non-default
value came from.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping
from urllib.parse import urlsplit

from ..cli import collect_values
from ..config import OPTIONS, Config, ConfigError, _suggest, parse_value
from ..sizing import auto_workers, cpu_count

APP_TARGET = "django_granian.django.application:application"
SOURCE_GRANIAN = "settings.GRANIAN"
# options the Django command decides itself
RESERVED = {"app": "the Django command serves the project named by DJANGO_SETTINGS_MODULE",
            "factory": "the Django command serves the project named by DJANGO_SETTINGS_MODULE"}


class Problem:
    """A problem with ``settings.GRANIAN``: reported by the system checks and the command."""

    __slots__ = ("id", "msg", "hint")

    def __init__(self, id: str, msg: str, hint: str | None = None) -> None:
        self.id = id
        self.msg = msg
        self.hint = hint

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"Problem({self.id!r}, {self.msg!r})"


def option_name(key: Any) -> str:
    return str(key).lstrip("-").replace("-", "_").lower()


def parse_granian(raw: Any) -> tuple[dict[str, Any], list[Problem]]:
    """Validate ``settings.GRANIAN``: (option name -> parsed value, problems)."""
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    if raw is None:
        return values, problems
    if not isinstance(raw, Mapping):
        problems.append(Problem("django_granian.E001", f"settings.GRANIAN must be a dict, not "
                                f"{type(raw).__name__}.", "GRANIAN = {\"workers\": 4, \"http\": \"auto\"}"))
        return values, problems
    for key, value in raw.items():
        name = option_name(key)
        if name not in OPTIONS:
            problems.append(Problem("django_granian.E002", f"settings.GRANIAN: unknown option {key!r}"
                                    f"{_suggest(name)}.", "Keys are the server's option names, e.g. "
                                    "'workers', 'http', 'static_path_expires' (see docs/reference.md)."))
            continue
        if name in RESERVED:
            problems.append(Problem("django_granian.E003", f"settings.GRANIAN: {key!r} cannot be set: "
                                    f"{RESERVED[name]}.", "Remove it."))
            continue
        try:
            values[name] = parse_value(OPTIONS[name], value, source=SOURCE_GRANIAN)
        except ConfigError as exc:
            problems.append(Problem("django_granian.E004", f"settings.GRANIAN[{key!r}]: {exc}"))
    if not problems:
        try:
            Config(**values).validate()
        except ConfigError as exc:
            problems.append(Problem("django_granian.E005", f"settings.GRANIAN: {exc}"))
        except TypeError as exc:  # pragma: no cover - defensive
            problems.append(Problem("django_granian.E005", f"settings.GRANIAN: {exc}"))
    return values, problems


def static_url_path(settings: Any) -> str | None:
    """The URL path of STATIC_URL as Django renders it (script prefix included); None when it is an
    absolute URL on another host (a CDN) or unset."""
    url = getattr(settings, "STATIC_URL", None)
    if not url:
        return None
    parts = urlsplit(str(url))
    if parts.scheme or parts.netloc:
        return None
    path = parts.path if parts.path.startswith("/") else "/" + parts.path
    return path.rstrip("/") or None


def static_mount(settings: Any) -> tuple[str | None, str | None, list[str]]:
    """(route, directory, warnings) for STATIC_URL / STATIC_ROOT."""
    root = getattr(settings, "STATIC_ROOT", None)
    route = static_url_path(settings)
    if not root:
        if "django.contrib.staticfiles" in getattr(settings, "INSTALLED_APPS", ()):
            return None, None, ["STATIC_ROOT is not set: static files will not be served. Set STATIC_ROOT and "
                                "run `manage.py collectstatic` (or pass --collectstatic)."]
        return None, None, []
    root = os.fspath(root)
    if route is None:
        return None, None, [f"STATIC_URL {getattr(settings, 'STATIC_URL', None)!r} is not a path on this server: "
                            "static files are not served by it."]
    if not _has_entries(root):
        return None, None, [f"STATIC_ROOT {root!r} is missing or empty: static files will not be served. Run "
                            "`manage.py collectstatic` first, or pass --collectstatic."]
    return route, root, []


def _has_entries(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(entries)
    except OSError:  # missing, not a directory, not readable
        return False


def machine_values() -> dict[str, tuple[Any, str]]:
    cpus = cpu_count()
    workers = auto_workers()
    source = f"machine: {cpus} CPU{'s' if cpus != 1 else ''}"
    try:
        import psutil

        source += f", {psutil.virtual_memory().available // 2**20} MiB available"
    except Exception:  # noqa: BLE001 - psutil missing or unsupported platform
        pass
    return {"workers": (workers, source), "blocking_threads": (django_threads(cpus), source)}


def django_threads(cpus: int) -> int:
    """Threads per worker for Django's sync handler: enough to overlap database and network waits,
    few enough that the GIL is not fought over (Django views are mostly Python, not I/O)."""
    return max(4, min(16, 2 * cpus))


def settings_values(settings: Any) -> dict[str, tuple[Any, str]]:
    """Defaults derived from Django settings (besides static files, merged later)."""
    values: dict[str, tuple[Any, str]] = {}
    script_name = getattr(settings, "FORCE_SCRIPT_NAME", None)
    if script_name:
        prefix = str(script_name).rstrip("/")
        if prefix:
            values["url_path_prefix"] = (prefix, "FORCE_SCRIPT_NAME")
    return values


def _merge_static(values: dict[str, tuple[Any, str]], route: str | None, root: str | None) -> None:
    if route is None or root is None:
        return
    routes = values.get("static_path_route")
    mounts = values.get("static_path_mount")
    if routes is None and mounts is None:
        values["static_path_route"] = ([route], "STATIC_URL")
        values["static_path_mount"] = ([root], "STATIC_ROOT")
        return
    user_routes = list(routes[0]) if routes else []
    user_mounts = list(mounts[0]) if mounts else []
    if user_routes and len(user_routes) == len(user_mounts) and route not in user_routes:
        # the user's extra mounts (e.g. MEDIA_ROOT) are served besides STATIC_ROOT
        assert routes is not None and mounts is not None
        values["static_path_route"] = ([*user_routes, route], f"{routes[1]} + STATIC_URL")
        values["static_path_mount"] = ([*user_mounts, root], f"{mounts[1]} + STATIC_ROOT")


def media_values(settings: Any, values: dict[str, tuple[Any, str]]) -> list[str]:
    """``serve_media``: MEDIA_ROOT at MEDIA_URL (unless --media-path-mount was given); warnings."""
    if not values.get("serve_media", (False, ""))[0] or "media_path_mount" in values:
        return []
    root = getattr(settings, "MEDIA_ROOT", None)
    url = getattr(settings, "MEDIA_URL", None)
    if not root:
        return ["serve_media is on but MEDIA_ROOT is not set: no media files are served."]
    parts = urlsplit(str(url or ""))
    if not url or parts.scheme or parts.netloc:
        return [f"serve_media is on but MEDIA_URL {url!r} is not a path on this server: no media files are served."]
    root = os.fspath(root)
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)  # what FileSystemStorage does on the first upload
    path = parts.path if parts.path.startswith("/") else "/" + parts.path
    values["media_path_mount"] = (root, "MEDIA_ROOT")
    values["media_path_route"] = (path.rstrip("/") or "/", "MEDIA_URL")
    return []


def sendfile_values(settings: Any, values: dict[str, tuple[Any, str]]) -> None:
    """django-sendfile2's nginx / xsendfile backends: its SENDFILE_URL and SENDFILE_ROOT become the internal
    route (X-Accel-Redirect) or the X-Sendfile root, unless the options were given."""
    backend = str(getattr(settings, "SENDFILE_BACKEND", "") or "")
    root = getattr(settings, "SENDFILE_ROOT", None)
    if not root or not os.path.isdir(os.fspath(root)):
        return
    root = os.fspath(root)
    if backend.endswith(".nginx") and "x_accel_route" not in values and "x_accel_mount" not in values:
        url = getattr(settings, "SENDFILE_URL", None)
        if url and not urlsplit(str(url)).netloc:
            values["x_accel_route"] = ([str(url).rstrip("/") or "/"], "SENDFILE_URL")
            values["x_accel_mount"] = ([root], "SENDFILE_ROOT")
    elif backend.endswith(".xsendfile") and "x_sendfile_root" not in values:
        values["x_sendfile_root"] = ([root], "SENDFILE_ROOT")


def build_config(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                 settings: Any = None) -> tuple[Config, list[str]]:
    """The Config for ``manage.py granian`` and the warnings to show before serving."""
    if settings is None:
        from django.conf import settings as django_settings

        settings = django_settings
    environ = os.environ if environ is None else environ
    warnings: list[str] = []
    base = {**machine_values(), **settings_values(settings)}
    granian, problems = parse_granian(getattr(settings, "GRANIAN", None))
    if problems:
        raise ConfigError("; ".join(p.msg for p in problems))
    for name, value in granian.items():
        base[name] = (value, SOURCE_GRANIAN)
    env = {k: v for k, v in environ.items() if k not in ("GRANIAN_APP", "GRANIAN_FACTORY")}
    values = collect_values(cli, env, base)
    for name in ("app", "factory"):
        _, source = values.pop(name, (None, ""))
        if source and source == values.get("config", (None, ""))[0]:
            warnings.append(f"{name!r} in {source} is ignored: manage.py granian serves the project named by "
                            "DJANGO_SETTINGS_MODULE.")
    route, root, static_warnings = static_mount(settings)
    warnings += static_warnings
    if root and importlib.util.find_spec("django_granian.static_files.files") is None:
        warnings.append("the static file engine is not available in this version: STATIC_ROOT is not served.")
        route = root = None
    _merge_static(values, route, root)
    warnings += media_values(settings, values)
    sendfile_values(settings, values)
    prefix = values.get("url_path_prefix", (None, ""))[0]
    if route and prefix and not (route == prefix or route.startswith(prefix.rstrip("/") + "/")):
        warnings.append(f"STATIC_URL {route!r} is outside the URL prefix {prefix!r}: requests for it get 404. "
                        "Make STATIC_URL relative (e.g. 'static/') so Django puts it under FORCE_SCRIPT_NAME.")
    workers, workers_source = values["workers"]
    if workers > 1 and importlib.util.find_spec("django_granian.workers.supervisor") is None:
        warnings.append(f"{workers} workers requested ({workers_source}) but the multi-process supervisor is not "
                        "available in this version: serving with 1 worker.")
        values["workers"] = (1, "fallback: no supervisor")
    if getattr(settings, "DEBUG", False):
        warnings.append("DEBUG = True: this is a production server. DEBUG shows settings and tracebacks to "
                        "visitors and keeps every SQL query in memory; set DEBUG = False in production "
                        "(use `manage.py runserver` for development).")
    config = Config(app=APP_TARGET, **{k: v for k, (v, _) in values.items()}).validate()
    object.__setattr__(config, "_sources", {k: src for k, (_, src) in values.items()})
    return config, warnings


def describe_sources(config: Config) -> list[tuple[str, Any, str]]:
    """(flag, value, source) for every non-default option: what ``--print-config`` shows."""
    sources = getattr(config, "_sources", {})
    return [(OPTIONS[name].flag, value, sources.get(name, "default"))
            for name, value in config.non_defaults().items()]
