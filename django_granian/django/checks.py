"""System checks tagged ``django_granian`` (``manage.py check --tag django_granian``).

They run before ``manage.py granian`` serves (errors stop it) and with every other command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Warning, register

from ..config import OPTIONS, ConfigError, env_value, parse_value
from .conf import option_name, parse_granian, static_url_path

TAG = "django_granian"


@register(TAG)
def check_granian_setting(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """settings.GRANIAN: a dict of known option names with valid values."""
    _, problems = parse_granian(getattr(settings, "GRANIAN", None))
    return [Error(p.msg, hint=p.hint, obj="settings.GRANIAN", id=p.id) for p in problems]


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.relative_to(parent)
    except ValueError:
        return False
    return True


@register(TAG)
def check_static_root(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """STATIC_ROOT must not be inside an app (collectstatic would copy files into the app itself)."""
    root = getattr(settings, "STATIC_ROOT", None)
    out: list[CheckMessage] = []
    if not root:
        return out
    root_path = Path(os.path.abspath(os.fspath(root)))
    for config in apps.get_app_configs():
        app_path = Path(os.path.abspath(config.path))
        if _inside(root_path, app_path) and (app_path / "static").exists() or _inside(root_path, app_path / "static"):
            out.append(Warning(
                f"STATIC_ROOT {str(root_path)!r} is inside the app {config.label!r} ({str(app_path)!r}).",
                hint="Put STATIC_ROOT outside every app and every STATICFILES_DIRS entry (e.g. BASE_DIR / "
                     "'staticfiles'): collectstatic would otherwise collect its own output.",
                obj="settings.STATIC_ROOT", id="django_granian.W001"))
            break
    url = getattr(settings, "STATIC_URL", None)
    if url and static_url_path(settings) is None:
        out.append(Info(f"STATIC_URL {url!r} is on another host: django-granian does not serve STATIC_ROOT.",
                        obj="settings.STATIC_URL", id="django_granian.I001"))
    return out


@register(TAG)
def check_media_root(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """MEDIA_ROOT and STATIC_ROOT must not contain each other: collectstatic would publish or overwrite
    uploads, and uploads would be served with the static files' rules (and vice versa)."""
    media = getattr(settings, "MEDIA_ROOT", None)
    static = getattr(settings, "STATIC_ROOT", None)
    if not media or not static:
        return []
    media_path = Path(os.path.realpath(os.fspath(media)))
    static_path = Path(os.path.realpath(os.fspath(static)))
    if _inside(media_path, static_path) or _inside(static_path, media_path):
        which = "the same directory as" if media_path == static_path else (
            "inside" if _inside(media_path, static_path) else "contains")
        return [Warning(f"MEDIA_ROOT {str(media_path)!r} is {which} STATIC_ROOT {str(static_path)!r}.",
                        hint="Keep user uploads and collected static files apart (e.g. BASE_DIR / 'media' and "
                             "BASE_DIR / 'staticfiles'): static files are served as trusted (cached, "
                             "precompressed siblings) and uploads are not.",
                        obj="settings.MEDIA_ROOT", id="django_granian.W004")]
    return []


def _forwarded_allow_ips() -> list[str]:
    values, _ = parse_granian(getattr(settings, "GRANIAN", None))
    ips = list(values.get("forwarded_allow_ips") or [])
    env = os.environ.get("GRANIAN_FORWARDED_ALLOW_IPS")
    if env:
        ips = env.split()
    return ips


@register(TAG)
def check_proxy_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """SECURE_PROXY_SSL_HEADER trusts a header from anyone who can reach the server."""
    out: list[CheckMessage] = []
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None) and not _forwarded_allow_ips():
        out.append(Warning(
            "SECURE_PROXY_SSL_HEADER is set but the server trusts no proxy (forwarded_allow_ips is empty).",
            hint="Set GRANIAN = {'forwarded_allow_ips': ['<proxy IP or CIDR>']} (or --forwarded-allow-ips) so the "
                 "server takes the scheme and client address only from your proxy, and make sure clients cannot "
                 "reach the server directly with a forged X-Forwarded-Proto.",
            obj="settings.SECURE_PROXY_SSL_HEADER", id="django_granian.W002"))
    script_name = getattr(settings, "FORCE_SCRIPT_NAME", None)
    if script_name and not str(script_name).startswith("/"):
        out.append(Error(f"FORCE_SCRIPT_NAME {script_name!r} must start with '/' to be used as the URL prefix.",
                         obj="settings.FORCE_SCRIPT_NAME", id="django_granian.E006"))
    raw = getattr(settings, "GRANIAN", None)
    if isinstance(raw, dict) and script_name and any(option_name(k) == "url_path_prefix" for k in raw):
        prefix = str(next(v for k, v in raw.items() if option_name(k) == "url_path_prefix") or "").rstrip("/")
        if prefix != str(script_name).rstrip("/"):
            out.append(Warning(
                f"GRANIAN['url_path_prefix'] {prefix!r} differs from FORCE_SCRIPT_NAME {script_name!r}.",
                hint="Leave url_path_prefix out: the server uses FORCE_SCRIPT_NAME.",
                obj="settings.GRANIAN", id="django_granian.W003"))
    return out


def _option(name: str) -> Any:
    """An option's value from settings.GRANIAN, overridden by its GRANIAN_* variable (not the command
    line, which checks cannot see)."""
    values, _ = parse_granian(getattr(settings, "GRANIAN", None))
    found = env_value(OPTIONS[name], os.environ)
    if found is not None:
        try:
            return parse_value(OPTIONS[name], found[1], source=f"environment {found[0]}")
        except ConfigError:
            return None
    return values.get(name)


@register(TAG)
def check_https(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """acme_domain vs ALLOWED_HOSTS; proxy and HSTS settings while the server itself terminates TLS."""
    from django.http.request import validate_host

    out: list[CheckMessage] = []
    domains = [d for raw in (_option("acme_domain") or []) for d in str(raw).replace(",", " ").split()]
    allowed = list(getattr(settings, "ALLOWED_HOSTS", []) or [])
    if getattr(settings, "DEBUG", False) and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    missing = [d for d in domains if not validate_host(d.lower().rstrip("."), allowed)]
    if missing:
        out.append(Warning(
            f"acme_domain {', '.join(missing)} not covered by ALLOWED_HOSTS {allowed!r}: the certificate is "
            "obtained but Django answers 400 to every request for it.",
            hint=f"Add {missing[0]!r} (or '.{missing[0]}' for its subdomains too) to ALLOWED_HOSTS.",
            obj="settings.ALLOWED_HOSTS", id="django_granian.W004"))
    terminates_tls = bool(domains or _option("ssl_certificate"))
    if terminates_tls and getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        out.append(Warning(
            "SECURE_PROXY_SSL_HEADER is set but django-granian terminates TLS itself (acme_domain or "
            "ssl_certificate): requests are secure without it, and it lets any client claim HTTPS with a "
            "forged header.",
            hint="Remove SECURE_PROXY_SSL_HEADER; request.is_secure() is True for the server's HTTPS requests.",
            obj="settings.SECURE_PROXY_SSL_HEADER", id="django_granian.W005"))
    if _option("hsts") and getattr(settings, "SECURE_HSTS_SECONDS", 0):
        out.append(Warning(
            "Both the server's hsts option and SECURE_HSTS_SECONDS are set: responses would carry two "
            "Strict-Transport-Security headers.",
            hint="Keep one: GRANIAN['hsts'] (every HTTPS response, static files included) or Django's.",
            obj="settings.SECURE_HSTS_SECONDS", id="django_granian.W006"))
    return out
