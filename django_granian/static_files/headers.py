"""Request header rules for static files (pure functions, table-tested): single byte ranges, entity
tags and HTTP dates; Accept-Encoding with q-values is shared with response compression
(:mod:`django_granian.compression.negotiate`)."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from functools import lru_cache

from ..compression.negotiate import accept_encoding, coding_quality

__all__ = ["UNSATISFIABLE", "accept_encoding", "coding_quality", "etag_matches", "http_date", "parse_range"]

UNSATISFIABLE = (-1, -1)


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
