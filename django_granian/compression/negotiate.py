"""``Accept-Encoding`` (RFC 9110 section 12.5.3): parsing with q-values and choosing a content coding.

Pure functions, table-tested (``tests/test_compression.py``). Shared by the response compressor
(:mod:`.policy`) and the static file engine, which picks among precompressed siblings.
"""

from __future__ import annotations

from functools import lru_cache

IDENTITY_DEFAULT = 0.0001  # identity is always acceptable, but any encoding the client accepts wins
ALIASES = {"x-gzip": "gzip"}  # RFC 9110: x-gzip is gzip


@lru_cache(maxsize=256)
def accept_encoding(value: bytes) -> dict[str, float]:
    """``Accept-Encoding`` as ``{coding: q}``: lower-case codings, ``*`` kept as is. A malformed or
    out-of-range q-value counts as ``q=0`` (the coding is refused, never chosen by mistake); empty
    elements are skipped; a coding listed twice keeps its last q."""
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
                if not 0.0 <= q <= 1.0 or q != q:  # q != q: NaN
                    q = 0.0
        result[coding] = q
    return result


def coding_quality(accepted: dict[str, float], coding: str) -> float:
    """How much the client wants ``coding`` (``gzip``, ``br``, ``zstd`` or ``identity``); 0 = not
    acceptable. A coding not listed gets the q of ``*``; identity not listed stays acceptable with the
    lowest preference. Refusing identity cannot be honoured by a server that has nothing else to send,
    so it keeps an even lower, non-zero preference."""
    q = accepted.get(coding)
    if q is None:
        for alias, name in ALIASES.items():
            if name == coding:
                q = accepted.get(alias)
    if q is None:
        q = accepted.get("*")
    if q is None:
        return IDENTITY_DEFAULT if coding == "identity" else 0.0
    if coding == "identity" and q == 0.0:
        return IDENTITY_DEFAULT / 2
    return q


@lru_cache(maxsize=512)
def choose_coding(value: bytes | None, offered: tuple[str, ...]) -> str | None:
    """The coding of ``offered`` (the server's order of preference) to compress with for a request
    whose ``Accept-Encoding`` is ``value``: the highest q wins, ties go to the earlier offered coding
    (and a coding beats identity at the same q: ``*`` or ``gzip, identity`` mean either is fine), and
    None means identity (no header, nothing acceptable, or identity preferred by a higher q)."""
    if not value:
        return None
    accepted = accept_encoding(value)
    best: str | None = None
    best_q = accepted.get("identity", IDENTITY_DEFAULT)
    for coding in offered:
        q = coding_quality(accepted, coding)
        if q > 0.0 and (q > best_q or (best is None and q == best_q)):
            best, best_q = coding, q
    return best
