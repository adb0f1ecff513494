"""Request scope construction shared by every protocol (HTTP/1.1 and HTTP/2) and interface:
paths (ASGI ``path``, WSGI ``PATH_INFO``, ``--url-path-prefix``) and the ASGI HTTP scope. Proxy
headers are applied before (``protocol/proxy.py``, by ``app/interface.py``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, unquote_to_bytes

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
HTTP_EXTENSIONS: dict = {"http.response.trailers": {}, "http.response.early_hint": {}, "http.response.pathsend": {}}


_PATH_CACHE: dict[bytes, str] = {}


def decode_path(raw_path: bytes) -> str:
    """Percent-decode a raw path into the ASGI ``path`` (UTF-8, invalid bytes replaced)."""
    path = _PATH_CACHE.get(raw_path)
    if path is None:
        path = unquote(raw_path.decode("latin-1")) if b"%" in raw_path else raw_path.decode("latin-1")
        if len(_PATH_CACHE) < 4096 and len(raw_path) < 256:
            _PATH_CACHE[raw_path] = path
    return path


def wsgi_path(raw_path: bytes) -> str:
    """PEP 3333 PATH_INFO: percent-decoded bytes carried in a latin-1 str."""
    return unquote_to_bytes(raw_path).decode("latin-1") if b"%" in raw_path else raw_path.decode("latin-1")


def strip_prefix(raw_path: bytes, prefix: bytes) -> bytes | None:
    """The path below ``prefix``, or None when the request is outside it."""
    if raw_path.startswith(prefix):
        rest = raw_path[len(prefix):]
        if not rest or rest[0] == 0x2F:
            return rest
    return None


def asgi_http_scope(method: str, http_version: str, scheme: str, raw_path: bytes, query: bytes,
                    headers: list, client: Any, server: Any, root_path: str, state: dict | None,
                    extensions: dict | None = None) -> dict:
    scope = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": http_version,
        "method": method,
        "scheme": scheme,
        "path": decode_path(raw_path),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
    }
    if state is not None:
        scope["state"] = state.copy()
    # ASGI extensions every transport supports (http.response.trailers/early_hint/pathsend), plus the
    # per-connection `tls` extension when the channel provides one; a copy per request
    scope["extensions"] = (extensions or HTTP_EXTENSIONS).copy()
    return scope
