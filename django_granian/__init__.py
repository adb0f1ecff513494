"""django-granian: a production HTTP/1.1, HTTP/2 and WebSocket server for ASGI, WSGI and RSGI apps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .config import Config as Config
    from .serving import Server as Server
    from .serving import serve as serve

__all__ = ["Config", "Server", "serve", "__version__"]


def __getattr__(name: str) -> Any:  # lazy: `import django_granian` stays cheap (Django app loading)
    if name == "Config":
        from .config import Config

        return Config
    if name in ("Server", "serve"):
        from . import serving

        return getattr(serving, name)
    raise AttributeError(name)
