"""Which responses are compressed, and how their headers change (sans-IO, table-tested).

:meth:`Compression.plan` looks at one response head (status, headers, the request's
``Accept-Encoding``, HEAD or not) and answers:

- ``None``: leave the response alone. It already has a ``Content-Encoding``, its status has no body
  to compress (1xx, 204, 206, 304), its type is not compressible, or it says
  ``Cache-Control: no-transform``;
- a :class:`Plan` without a codec: send it as it is but with ``Vary: Accept-Encoding`` (another
  client may get it compressed): a HEAD request, a body below the minimum size, a client that
  accepts none of the offered codings, or a response that sets a cookie (BREACH, see below);
- a :class:`Plan` with a codec: compress. Its headers are still those of the uncompressed response
  (with Vary), for when the body turns out too small; :func:`compressed_headers` makes those of the
  compressed one: ``Content-Encoding``, ``Vary: Accept-Encoding``, a weak ``ETag`` (``W/"..."``, as
  nginx and Django's GZipMiddleware do, so ``If-None-Match`` still matches the app's own tag), and
  neither ``Content-Length`` (the caller sets the compressed length when it has the whole body) nor
  ``Accept-Ranges`` (ranges would be of the uncompressed bytes).

BREACH: compressing a response that holds a secret next to text an attacker can inject lets the
attacker guess the secret from the compressed size. Responses that set a cookie (session and login
responses; every Django page that renders a CSRF token re-sends the ``csrftoken`` cookie) are not
compressed unless ``with_cookies`` is set. See docs/compression.md.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..config import COMPRESS_TYPES
from .codecs import Codec
from .negotiate import choose_coding

NO_BODY = frozenset({204, 206, 304})

DEFAULT_TYPES = COMPRESS_TYPES  # declared with the option (config.py)
_VARY_VALUE = b"Accept-Encoding"
_DROPPED = frozenset({b"content-length", b"accept-ranges"})


class TypeMatcher:
    """Media types given as ``type/subtype``, ``type/*`` or ``type/*+suffix`` (case-insensitive);
    parameters (``; charset=utf-8``) are ignored."""

    __slots__ = ("exact", "prefixes", "suffixes", "_seen")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.exact: set[bytes] = set()
        self.prefixes: list[bytes] = []
        self.suffixes: list[tuple[bytes, bytes]] = []
        self._seen: dict[bytes, bool] = {}
        for pattern in patterns:
            pat = pattern.strip().lower().encode("latin-1")
            if not pat:
                continue
            kind, slash, sub = pat.partition(b"/")
            if not slash or not kind or not sub or b"*" in kind:
                raise ValueError(f"media type {pattern!r}: expected type/subtype, type/* or type/*+suffix")
            if sub == b"*":
                self.prefixes.append(kind + b"/")
            elif sub.startswith(b"*+"):
                self.suffixes.append((kind + b"/", sub[1:]))
            elif b"*" in sub:
                raise ValueError(f"media type {pattern!r}: '*' only as type/* or type/*+suffix")
            else:
                self.exact.add(pat)

    def __call__(self, content_type: bytes) -> bool:
        seen = self._seen.get(content_type)
        if seen is not None:
            return seen
        media = content_type.split(b";", 1)[0].strip().lower()
        result = media in self.exact or media.startswith(tuple(self.prefixes)) or any(
            media.startswith(kind) and media.endswith(suffix) for kind, suffix in self.suffixes)
        if len(self._seen) < 256:
            self._seen[content_type] = result
        return result


class Plan:
    """What to do with one response: ``headers`` are the uncompressed response's (with Vary);
    ``codec`` None means 'send it uncompressed'."""

    __slots__ = ("codec", "headers", "length")

    def __init__(self, codec: Codec | None, headers: list[tuple[bytes, bytes]], length: int) -> None:
        self.codec = codec
        self.headers = headers
        self.length = length  # the uncompressed Content-Length the app declared, -1 if none


class Compression:
    """The response compression settings of a worker (built once from the config)."""

    def __init__(self, codecs: Sequence[Codec], types: Iterable[str] = DEFAULT_TYPES, min_size: int = 512,
                 with_cookies: bool = False) -> None:
        self.codecs = {codec.name: codec for codec in codecs}
        self.offered = tuple(codec.name for codec in codecs)
        self.compressible = TypeMatcher(types)
        self.min_size = min_size
        self.with_cookies = with_cookies

    def plan(self, accept: bytes | None, head_only: bool, status: int, headers: Any) -> Plan | None:
        if status < 200 or status in NO_BODY:
            return None
        content_type: bytes | None = None
        length = -1
        cookies = False
        vary_ok = False
        vary_at = -1
        out: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            lname = name.lower()
            if lname == b"content-type":
                content_type = value
            elif lname == b"content-encoding":
                return None  # the app compressed it (or chose identity on purpose)
            elif lname == b"cache-control":
                if b"no-transform" in value.lower():
                    return None
            elif lname == b"content-length":
                if value.isdigit():
                    length = int(value)
            elif lname == b"set-cookie":
                cookies = True
            elif lname == b"vary":
                tokens = [t.strip().lower() for t in value.split(b",")]
                if b"accept-encoding" in tokens or b"*" in tokens:
                    vary_ok = True
                vary_at = len(out)
            out.append((name, value))
        if content_type is None or not self.compressible(content_type):
            return None
        if not vary_ok:
            if vary_at >= 0:
                name, value = out[vary_at]
                out[vary_at] = (name, value + b", " + _VARY_VALUE if value.strip() else _VARY_VALUE)
            else:
                out.append((b"vary", _VARY_VALUE))
        if head_only or (cookies and not self.with_cookies) or 0 <= length < self.min_size:
            return Plan(None, out, length)
        coding = choose_coding(accept, self.offered)
        if coding is None:
            return Plan(None, out, length)
        return Plan(self.codecs[coding], out, length)


def compressed_headers(headers: list[tuple[bytes, bytes]], coding: str) -> list[tuple[bytes, bytes]]:
    """``headers`` for the ``coding`` representation: without Content-Length and Accept-Ranges, with a
    weak ETag and ``Content-Encoding``."""
    out = []
    for name, value in headers:
        lname = name.lower()
        if lname in _DROPPED:
            continue
        if lname == b"etag" and value.startswith(b'"'):
            value = b"W/" + value
        out.append((name, value))
    out.append((b"content-encoding", coding.encode("ascii")))
    return out


def from_config(config: Any) -> Compression | None:
    """The worker's :class:`Compression`, or None when ``--compress`` is off. Codings whose package
    is missing are left out (the banner lists what is offered)."""
    if not config.compress:
        return None
    import logging

    from .codecs import CODECS, MODULES, available

    for name in config.compress_encodings:
        if not available(name):
            logging.getLogger("django_granian").warning(
                "--compress-encodings: %s is not offered: the %s package is not installed (pip install "
                "'django-granian[compress]')", name, MODULES[name])
    levels = {"gzip": config.compress_gzip_level, "br": config.compress_br_level,
              "zstd": config.compress_zstd_level}
    codecs = [CODECS[name](levels[name]) for name in config.compress_encodings if available(name)]
    return Compression(codecs, config.compress_types, config.compress_min_size, config.compress_with_cookies)
