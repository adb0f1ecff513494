"""Turning a request path into a file path that can never leave its mount.

The request path is percent-decoded exactly once (``%252e`` stays the literal text ``%2e``); the
decoded path must be UTF-8 without backslashes or NUL, and every segment must be a real name (no
``.``, ``..`` or empty segment, so no absolute path either). Symlinks are resolved with
``os.path.realpath`` and must stay under the mount's real path unless following them was asked for.
"""

from __future__ import annotations

import os
from urllib.parse import quote, unquote_to_bytes

# characters left as they are in canonical URLs (RFC 3986 pchar minus "%"); everything else is %XX
URL_SAFE = "!$&'()*+,;=:@~"


def split_request_path(rel: bytes) -> tuple[list[str], bool] | None:
    """``rel`` is the raw path below a route (``b""`` or starting with ``/``).

    Returns ``(segments, trailing_slash)`` or None when the path is not acceptable.
    """
    if b"%" in rel:
        rel = unquote_to_bytes(rel)
    if b"\\" in rel or b"\x00" in rel:
        return None
    try:
        text = rel.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return [], False
    if text[0] != "/":
        return None
    parts = text[1:].split("/")
    trailing = parts[-1] == ""
    if trailing:
        parts.pop()
    for part in parts:
        if part in ("", ".", ".."):
            return None
    return parts, trailing


def url_for(route: bytes, parts: list[str]) -> bytes:
    """The canonical (percent-encoded) URL path of a file below ``route``."""
    if not parts:
        return route + b"/"
    return route + b"/" + "/".join(quote(p, safe=URL_SAFE) for p in parts).encode("ascii")


def inside(path: str, root_real: str) -> bool:
    """Whether ``path``, with every symlink resolved, is ``root_real`` or below it."""
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)
