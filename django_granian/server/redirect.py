"""The plain-HTTP listener of ``--http-redirect-port``: ACME http-01 answers, else a 308 to https://.

It runs in every worker beside the HTTPS listener, on the HTTP/1.1 protocol with its own
:class:`~django_granian.server.state.ServerState` whose interface is :class:`RedirectInterface`, so
the request parsing, limits, keep-alive and timeouts are the server's usual ones; the application
never sees these requests.

- ``GET /.well-known/acme-challenge/<token>``: the key authorization the ACME process published in
  the cache directory (``acme/store.py``), or 404;
- anything else: ``308 Permanent Redirect`` to ``https://<host>[:<port>]<path>?<query>`` (308 keeps
  the method and body, RFC 9110 section 15.4.9); the port is left out when it is 443.
"""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..protocol.http11 import RequestHead

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_HOST_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:[]")


class RedirectInterface:
    name = "redirect"

    def __init__(self, config: Config, server: Any) -> None:
        self.server = server
        self.suffix = b"" if config.port == 443 else b":%d" % config.port
        self.fallback_host = config.acme_domain[0].encode() if config.acme_domain else None
        self.acme_root: str | None = None
        if config.acme_domain and config.acme_challenge_type == "http-01":
            from ..acme.store import CertStore

            self.acme_root = CertStore.from_config(config).root

    def http(self, channel: Any, head: RequestHead) -> None:
        path = head.raw_path
        if self.acme_root is not None and path.startswith(b"/.well-known/acme-challenge/"):
            from ..acme.store import http01_answer

            answer = http01_answer(self.acme_root, path)
            if answer is None:
                channel.respond(404, _TEXT, b"Not Found\n")
            else:
                channel.respond(200, [(b"content-type", b"application/octet-stream")], answer)
            return None
        host = _host_name(head.host) or self.fallback_host
        if host is None:
            channel.respond(400, _TEXT, b"Bad Request: no Host header to redirect to\n")
            return None
        location = b"https://" + host + self.suffix + (path or b"/") + (b"?" + head.query if head.query else b"")
        channel.respond(308, [(b"location", location), *_TEXT], b"Redirecting to " + location + b"\n")
        return None

    def websocket(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> Any:
        return None

    async def startup(self) -> None:
        pass

    async def shutdown(self, timeout: float) -> None:
        pass

    def describe(self) -> str:
        return "redirect"


def _host_name(raw: bytes | None) -> bytes | None:
    """The host part of a Host header (port dropped), or None when it is missing or malformed."""
    if not raw or not set(raw) <= _HOST_BYTES:
        return None
    if raw.startswith(b"["):  # [v6]:port
        end = raw.find(b"]")
        return raw[:end + 1] if end > 0 else None
    host = raw.rsplit(b":", 1)[0] if raw.count(b":") == 1 else raw
    return host.lower() or None
