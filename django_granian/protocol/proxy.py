"""Trusted proxy headers, sans-IO: ``Forwarded`` (RFC 7239), ``X-Forwarded-For`` and ``X-Forwarded-Proto``.

:class:`ProxyTrust` is built once per worker from ``--forwarded-allow-ips`` (``server/state.py``);
the interface (``app/interface.py``) asks it for the client address and scheme of a request from a
trusted peer.
"""

from __future__ import annotations

import ipaddress


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
