"""HTTP/1.1 response heads, sans-IO: an application's header set validated and serialised once.

:func:`header_block` turns response headers into the bytes of their lines plus what the framing
needs to know (Content-Length, whether the app set ``server``/``date``, ``connection: close``), and
remembers the result in :data:`BLOCKS` per header set: apps send the same few sets again and again,
so the channel (``server/h1.py`` ``send_head``) finds a repeated set with one dict lookup, inline.
``Transfer-Encoding`` and ``Connection`` are left out: the framing is the server's. Names go out
lowercase whatever case the app used (Django's ``Content-Type``), so a response head is cased one way,
like the server's own ``date``/``server`` fields and like HTTP/2 (field names are case-insensitive).
"""

from __future__ import annotations

from typing import Any

from .fields import VALID_NAMES, ResponseHeaderError, check_name

HeaderBlock = tuple[bytes, int, bool, bool, bool]  # block, content-length or -1, has server, has date, close

BLOCKS: dict[tuple, HeaderBlock] = {}
BLOCKS_MAX = 1024
BLOCK_MAX_BYTES = 4096  # bigger header sets (long CSPs, many cookies) are rarely repeated: not remembered
LENGTH_LINES: dict[int, bytes] = {}  # b"content-length: N\r\n" by N

_SPECIAL = frozenset({b"content-length", b"transfer-encoding", b"connection", b"server", b"date"})


def length_line(size: int) -> bytes:
    """``content-length: size`` (the common sizes are remembered in :data:`LENGTH_LINES`)."""
    line = b"content-length: %d\r\n" % size
    if len(LENGTH_LINES) < 4096:
        LENGTH_LINES[size] = line
    return line


def header_block(headers: Any, key: tuple | None = None) -> HeaderBlock:
    """Validate response headers and serialise them: ``(block, content_length or -1, has_server,
    has_date, connection_close)``. With ``key`` (the headers as a hashable tuple) the result is
    remembered in :data:`BLOCKS` unless the block is big. Raises :class:`ResponseHeaderError`."""
    parts: list[bytes] = []
    append = parts.append
    content_length = -1
    has_server = has_date = close = False
    good = VALID_NAMES
    n = 0
    for name, value in headers:
        if name not in good:
            check_name(name)
        lname = name.lower()
        if lname in _SPECIAL:
            if lname == b"content-length":
                if not value.isdigit():
                    raise ResponseHeaderError(f"invalid content-length {value!r}")
                content_length = int(value)
            elif lname == b"transfer-encoding":
                continue  # framing is ours
            elif lname == b"connection":
                if b"close" in value.lower():
                    close = True
                continue
            elif lname == b"server":
                has_server = True
            else:
                has_date = True
        append(lname)  # one casing on the wire: lowercase, as the server's own fields and HTTP/2
        append(b": ")
        append(value)
        append(b"\r\n")
        n += 1
    block = b"".join(parts)
    if block.count(b"\n") != n or block.count(b"\r") != n or b"\x00" in block:
        raise ResponseHeaderError("response header names and values must not contain CR, LF or NUL")
    info = (block, content_length, has_server, has_date, close)
    if key is not None and len(block) <= BLOCK_MAX_BYTES:
        if len(BLOCKS) >= BLOCKS_MAX:
            BLOCKS.clear()
        BLOCKS[key] = info
    return info
