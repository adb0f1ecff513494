"""Sans-IO pieces of the HTTP/3 server around aioquic (which frames, and QPACK-codes with pylsqpack).

HTTP/3 requests follow HTTP/2's field rules (RFC 9114 section 4.3 mirrors RFC 9113 section 8.3), so
they are validated and turned into a :class:`~.http11.RequestHead` by :func:`.http2.request_head`
with ``http_version`` "3", and responses are :func:`.http2.response_fields` (the same validation
and memo as HTTP/2's HPACK blocks, as the list QPACK encodes). What is HTTP/3's own:

* :func:`head_frame_length`: the declared length of the HEADERS frame that opens a request stream,
  read from its first bytes, so an overlong header section is refused before it is buffered;
* :func:`field_section_size`: the size RFC 9114 section 4.2.2 limits (name + value + 32 per field).
"""

from __future__ import annotations

from typing import Iterable

HEADERS_FRAME = 0x01


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """A QUIC variable-length integer (RFC 9000 section 16) at ``pos``: ``(value, next pos)``, or None
    when ``data`` ends first."""
    if pos >= len(data):
        return None
    first = data[pos]
    size = 1 << (first >> 6)
    if pos + size > len(data):
        return None
    value = first & 0x3F
    for byte in data[pos + 1:pos + size]:
        value = (value << 8) | byte
    return value, pos + size


def head_frame_length(data: bytes) -> int | None:
    """The length of the HEADERS frame ``data`` (a request stream's first bytes) starts with; None when
    the frame header is incomplete or the stream starts with another frame type (reserved types may
    come first, RFC 9114 section 7.2.8: the caller counts bytes instead)."""
    kind = _varint(data, 0)
    if kind is None or kind[0] != HEADERS_FRAME:
        return None
    length = _varint(data, kind[1])
    return None if length is None else length[0]


def field_section_size(headers: Iterable[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) + 32 for name, value in headers)
