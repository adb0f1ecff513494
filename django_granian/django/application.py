"""The project's two entry points, located from its settings, and the interface that serves them.

``application`` (this module's lazy attribute, the app target of ``manage.py granian``) is a
:class:`DjangoProject`. The server asks it for its interface through ``__django_granian_interface__``
(see ``serving.build_interface``); it is also a plain ASGI app when embedded elsewhere.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger("django_granian")


def setup() -> None:
    """``django.setup()`` unless the app registry is ready already (``manage.py`` did it)."""
    import django
    from django.apps import apps

    if not apps.ready:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
        django.setup()


def wsgi_application() -> tuple[Any, str]:
    """WSGI_APPLICATION (or Django's default handler) and its name."""
    from django.conf import settings
    from django.core.servers.basehttp import get_internal_wsgi_application

    name = getattr(settings, "WSGI_APPLICATION", None) or "django.core.wsgi.get_wsgi_application()"
    return get_internal_wsgi_application(), name


def asgi_candidates() -> list[str]:
    """Where the project's ASGI application may live, most explicit first."""
    from django.conf import settings

    out: list[str] = []
    explicit = getattr(settings, "ASGI_APPLICATION", None)
    if explicit:
        out.append(str(explicit))
    wsgi = getattr(settings, "WSGI_APPLICATION", None)
    if wsgi and ".wsgi." in "." + str(wsgi):
        module, _, attr = str(wsgi).rpartition(".")
        out.append(module.rsplit(".", 1)[0] + ".asgi.application" if "." in module else "asgi.application")
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    if "." in settings_module:
        out.append(settings_module.rsplit(".", 1)[0] + ".asgi.application")
    return list(dict.fromkeys(out))


def asgi_application() -> tuple[Any, str]:
    """ASGI_APPLICATION, else ``<project>/asgi.py``'s ``application``, else Django's own handler."""
    import importlib.util

    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.utils.module_loading import import_string

    explicit = getattr(settings, "ASGI_APPLICATION", None)
    for candidate in asgi_candidates():
        if candidate != explicit:
            try:
                if importlib.util.find_spec(candidate.rsplit(".", 1)[0]) is None:
                    continue  # no asgi.py there
            except (ImportError, ValueError):
                continue
        try:
            return import_string(candidate), candidate
        except ImportError as exc:
            raise ImproperlyConfigured(f"ASGI application {candidate!r} could not be imported: {exc}") from exc
    from django.core.asgi import get_asgi_application

    return get_asgi_application(), "django.core.asgi.get_asgi_application()"


def import_urlconf() -> None:
    """Import ROOT_URLCONF (and so the views it names) now rather than on the first request: the first
    request is not slowed by it, every worker of a rolling restart or reload serves the code that was on
    disk when it started, and a view that fails to import stops the new worker from starting (the
    previous workers keep serving) instead of turning every request into a 500."""
    from django.conf import settings
    from django.urls import get_resolver

    if getattr(settings, "ROOT_URLCONF", None):
        get_resolver().url_patterns  # noqa: B018 - the property imports the URLconf module


class DjangoProject:
    """A Django project's WSGI and ASGI applications (loaded once per worker process)."""

    def __init__(self) -> None:
        setup()
        self.wsgi, self.wsgi_name = wsgi_application()
        self.asgi, self.asgi_name = asgi_application()
        import_urlconf()
        from django.conf import settings

        self.settings_module = os.environ.get("DJANGO_SETTINGS_MODULE") or str(getattr(settings, "SETTINGS_MODULE",
                                                                                       ""))

    def __django_granian_interface__(self, config: Any, state: Any) -> Any:
        from .handler import make_interface

        return make_interface(self, config, state)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.asgi(scope, receive, send)


_project: DjangoProject | None = None


def get_project() -> DjangoProject:
    global _project
    if _project is None:
        _project = DjangoProject()
    return _project


def __getattr__(name: str) -> Any:  # ``application`` is built on first access (in the worker)
    if name == "application":
        return get_project()
    raise AttributeError(name)
