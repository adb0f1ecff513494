"""X-Accel-Redirect and X-Sendfile: an app response naming a file is replaced by that file.

``X-Accel-Redirect: /protected/reports/q3.pdf`` (nginx style) is a URL path under one of the
internal routes (``--x-accel-route`` paired with ``--x-accel-mount``, like an nginx ``location
/protected/ { internal; alias ...; }``). It is percent-decoded once and resolved exactly like a
static file request (:mod:`.paths`): no ``.``/``..``/empty segment, no backslash or NUL, UTF-8, and
the real path (symlinks resolved) inside the mount. ``X-Sendfile: /srv/private/q3.pdf`` (Apache
mod_xsendfile, opt-in) is an absolute file path that must lie inside one of ``--x-sendfile-root``.

The file goes out through the static engine (sendfile, ETag, Last-Modified, 304, Range/206,
Content-Type from the extension unless the app set one) with the app's other headers kept
(Content-Disposition, Cache-Control, Set-Cookie ...), see :func:`.files.with_app_headers`. A
target outside every route or root, missing, a directory, or refused by the path rules is a 404 and
a warning in the log; the app's body is dropped and neither header reaches the client. The other
``X-Accel-*`` headers (Buffering, Expires, Limit-Rate, Charset) steer nginx's proxy buffer and
cache, which this server does not have: they are dropped too (docs/howto/replacing-nginx.md).
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import quote

from .files import StaticFiles
from .media import never_immutable
from .paths import URL_SAFE

logger = logging.getLogger("django_granian.static")

ACCEL_REDIRECT = b"x-accel-redirect"
SENDFILE = b"x-sendfile"
_NOT_FOUND = [(b"content-type", b"text/plain; charset=utf-8")]
_SENDFILE_ROUTE = "\x00sendfile/%d"  # internal mount names no X-Accel-Redirect value can reach (they
# do not start with "/", and NUL is refused in every value)


class InternalFiles:
    """The files an app may hand over with X-Accel-Redirect / X-Sendfile."""

    def __init__(self, routes: list[tuple[str, str]], sendfile_roots: list[str], *,
                 follow_symlinks: bool = False) -> None:
        self.roots = [os.path.abspath(root) for root in sendfile_roots]
        mounts = [*routes, *((_SENDFILE_ROUTE % i, root) for i, root in enumerate(self.roots))]
        self.engine = StaticFiles(mounts, expires=0, index_file=None, follow_symlinks=follow_symlinks,
                                  immutable=never_immutable, scan=False, siblings=False)
        self.accel = bool(routes)

    @classmethod
    def from_config(cls, config: Any) -> InternalFiles | None:
        if not config.x_accel_route and not config.x_sendfile_root:
            return None
        return cls(list(zip(config.x_accel_route, config.x_accel_mount, strict=True)), config.x_sendfile_root,
                   follow_symlinks=config.static_path_follow_symlinks)

    def describe(self) -> str:
        routes = [f"{m.route.decode()} -> {m.root}" for m in self.engine.mounts if m.route.startswith(b"/")]
        parts = [f"internal routes {', '.join(routes)}"] if routes else []
        if self.roots:
            parts.append(f"X-Sendfile under {', '.join(self.roots)}")
        return "; ".join(parts)

    def key_for(self, kind: bytes, value: bytes) -> bytes | None:
        """The engine's lookup path for a header value, or None when it is refused outright."""
        value = value.strip()
        if kind == ACCEL_REDIRECT:
            if not self.accel:
                return None
            path = value.split(b"?", 1)[0]
            return path if path.startswith(b"/") else None
        if not self.roots or b"\x00" in value:
            return None
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not text.startswith("/"):
            return None
        for i, root in enumerate(self.roots):
            prefix = root.rstrip("/") + "/"
            if text.startswith(prefix):
                rest = quote(text[len(prefix) - 1:], safe="/" + URL_SAFE)  # decoded once again by the lookup
                return (_SENDFILE_ROUTE % i).encode("utf-8") + rest.encode("ascii")
        return None

    def serve(self, channel: Any, head: Any, kind: bytes, value: bytes, app_headers: list) -> None:
        """Answer ``head`` on ``channel`` with the file the app named (or 404)."""
        key = self.key_for(kind, value)
        entry = self.engine.lookup(key) if key is not None else None
        if entry is None:
            where = "an internal route (--x-accel-route)" if kind == ACCEL_REDIRECT else \
                "a --x-sendfile-root"
            logger.warning("%s %r from the app for %s %s: no such file under %s; answered 404",
                           kind.decode().title(), value.decode("latin-1"), head.method,
                           head.raw_path.decode("latin-1"), where)
            channel.respond(404, _NOT_FOUND, b"Not Found\n")
            return
        self.engine.respond(channel, head, entry, app_headers)
