"""Request header rules for static files (pure functions, table-tested): Accept-Encoding with
q-values, single byte ranges, entity tags and HTTP dates."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from functools import lru_cache

UNSATISFIABLE = (-1, -1)
_IDENTITY_DEFAULT = 0.0001  # identity is always acceptable, but any encoding the client accepts wins


@lru_cache(maxsize=256)
def accept_encoding(value: bytes) -> dict[str, float]:
    """``Accept-Encoding`` as ``{coding: q}`` (lower-case codings; ``*`` kept as is; bad q -> 0)."""
    result: dict[str, float] = {}
    for item in value.decode("latin-1").split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if not coding:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, qvalue = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(qvalue.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        result[coding] = q
    return result


def coding_quality(accepted: dict[str, float], coding: str) -> float:
    """How much the client wants ``coding`` (``gzip``, ``br`` or ``identity``); 0 = not acceptable."""
    q = accepted.get(coding)
    if q is None and coding == "gzip":
        q = accepted.get("x-gzip")
    if q is None:
        q = accepted.get("*")
    if q is None:
        return _IDENTITY_DEFAULT if coding == "identity" else 0.0
    if coding == "identity" and q == 0.0:
        return _IDENTITY_DEFAULT / 2  # refusing identity cannot be honoured by a static file server
    return q


def parse_range(value: bytes, size: int) -> tuple[int, int] | None:
    """A ``Range`` header for a ``size``-byte file.

    Returns ``(start, stop)`` (stop exclusive) for one satisfiable range, :data:`UNSATISFIABLE`
    (answer 416) or None (ignore the header and answer 200: bad syntax, other units or several
    ranges, as RFC 9110 allows).
    """
    text = value.strip()
    if not text.lower().startswith(b"bytes="):
        return None
    spec = text[6:].strip()
    if b"," in spec:
        return None
    first, dash, last = spec.partition(b"-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(size - suffix, 0), size
    start = int(first)
    if last:
        stop = int(last) + 1
        if stop <= start:
            return None  # last < first: syntactically invalid, ignored
    else:
        stop = size
    if start >= size:
        return UNSATISFIABLE
    return start, min(stop, size)


def etag_matches(header: bytes, etag: bytes) -> bool:
    """``If-None-Match`` semantics: ``*`` or any listed tag equal to ``etag`` (weak comparison)."""
    header = header.strip()
    if header == b"*":
        return True
    if header == etag:
        return True
    plain = etag[2:] if etag.startswith(b"W/") else etag
    for tag in header.split(b","):
        tag = tag.strip()
        if tag.startswith(b"W/"):
            tag = tag[2:]
        if tag == plain:
            return True
    return False


@lru_cache(maxsize=256)
def http_date(value: bytes) -> float | None:
    """An HTTP date as a POSIX timestamp, None if it does not parse."""
    try:
        return parsedate_to_datetime(value.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
