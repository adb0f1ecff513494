"""Request scope construction shared by every protocol (HTTP/1.1 and HTTP/2) and interface.

``RequestInfo`` is the protocol-neutral description of one request as the transport saw it
(after proxy headers are applied); ASGI scopes and WSGI environs are built from it.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import unquote, unquote_to_bytes

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
HTTP_EXTENSIONS: dict = {"http.response.trailers": {}, "http.response.early_hint": {}, "http.response.pathsend": {}}


class ProxyTrust:
    """Applies Forwarded / X-Forwarded-For / X-Forwarded-Proto from trusted peers only."""

    __slots__ = ("networks", "all")

    def __init__(self, networks: list | None) -> None:
        self.all = networks is None
        self.networks = networks or []

    def trusts(self, host: str | None) -> bool:
        if self.all:
            return True
        if not self.networks or host is None:
            return False
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def apply(self, headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None,
              scheme: str) -> tuple[tuple[str, int] | None, str]:
        """Return (client, scheme) after applying proxy headers from a trusted peer."""
        xff = xfp = fwd = None
        for name, value in headers:
            if name == b"x-forwarded-for":
                xff = value if xff is None else xff + b"," + value
            elif name == b"x-forwarded-proto":
                xfp = value
            elif name == b"forwarded":
                fwd = value if fwd is None else fwd + b"," + value
        if fwd is not None:
            hops = _parse_forwarded(fwd.decode("latin-1"))
            # walk from the nearest hop; stop at the first address we do not trust
            for hop in reversed(hops):
                host = hop.get("for")
                proto = hop.get("proto")
                if proto in ("http", "https", "ws", "wss"):
                    scheme = _http_scheme(proto, scheme)
                if host:
                    client = (host, 0)
                    if not self.trusts(host):
                        break
            return client, scheme
        if xfp is not None:
            proto = xfp.decode("latin-1").split(",")[-1].strip().lower()
            if proto in ("http", "https", "ws", "wss"):
                scheme = _http_scheme(proto, scheme)
        if xff is not None:
            for part in reversed(xff.decode("latin-1").split(",")):
                host = part.strip()
                if not host:
                    continue
                client = (host, 0)
                if not self.trusts(host):
                    break
        return client, scheme


def _http_scheme(proto: str, current: str) -> str:
    secure = proto in ("https", "wss")
    if current in ("ws", "wss"):
        return "wss" if secure else "ws"
    return "https" if secure else "http"


def _parse_forwarded(value: str) -> list[dict[str, str]]:
    hops = []
    for element in value.split(","):
        hop: dict[str, str] = {}
        for pair in element.split(";"):
            key, _, val = pair.strip().partition("=")
            val = val.strip().strip('"')
            key = key.strip().lower()
            if key == "for":
                if val.startswith("["):
                    val = val[1:].split("]", 1)[0]
                elif val.count(":") == 1:
                    val = val.split(":", 1)[0]
                if val.lower() == "unknown" or val.startswith("_"):
                    val = ""
            if key:
                hop[key] = val.lower() if key == "proto" else val
        hops.append(hop)
    return hops


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
