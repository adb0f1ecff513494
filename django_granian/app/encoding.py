"""Response headers given as ``str`` pairs (WSGI ``start_response``, RSGI ``response_*``) -> bytes.

Apps send the same few header sets again and again, so each set is encoded once and remembered by
value; the same encoded tuple object then lets the channel find its serialised header block by
identity (``server/h1.py`` ``header_block``).
"""

from __future__ import annotations

from typing import Any

EncodedHeaders = tuple[tuple[bytes, bytes], ...]

_ENCODED: dict[tuple, tuple[EncodedHeaders, int]] = {}
_MAX = 1024
_MAX_BYTES = 4096  # bigger header sets are rarely repeated: encoded every time, never remembered


def encode_headers(headers: Any) -> tuple[EncodedHeaders, int]:
    """``(latin-1 encoded pairs, content-length or -1)``; TypeError for anything but (str, str) latin-1 pairs."""
    key: tuple | None
    try:
        key = tuple(headers)
        entry = _ENCODED.get(key)
    except TypeError:  # unhashable pairs: encode every time
        key = entry = None
    if entry is not None:
        return entry
    try:
        encoded = tuple([(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers])
    except (AttributeError, UnicodeEncodeError, ValueError, TypeError) as exc:
        raise TypeError(f"headers must be a list of (str, str) latin-1 pairs: {exc}") from None
    length = -1
    size = 0
    for name, value in encoded:
        size += len(name) + len(value)
        if name.lower() == b"content-length" and value.isdigit():
            length = int(value)
    entry = (encoded, length)
    if key is not None and size <= _MAX_BYTES:
        if len(_ENCODED) >= _MAX:
            _ENCODED.clear()
        _ENCODED[key] = entry
    return entry
