"""Header field rules shared by every protocol (RFC 9110 section 5): one token pattern, one error.

``TOKEN_RE`` is the ``token`` of field names and methods; :class:`ResponseHeaderError` is what an
application's invalid response (or trailer, or informational) header raises on every protocol; it
is a ``ValueError``, so request cycles treat it like any other invalid message from the app.
"""

from __future__ import annotations

import re
from typing import Any

TOKEN_RE = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
VALID_NAMES: set[bytes] = set()  # names that passed check_name (any case): a set lookup next time
_NAMES_MAX = 1024


class ResponseHeaderError(ValueError):
    """The application produced a header that cannot be sent."""


def lowercase_token(name: bytes) -> bool:
    """A valid HTTP/2 field name: a token without upper-case letters (RFC 9113 section 8.2.1)."""
    return TOKEN_RE.fullmatch(name) is not None and name.lower() == name


def check_name(name: Any) -> None:
    """Raise :class:`ResponseHeaderError` unless ``name`` is a bytes token; remembers good names."""
    if type(name) is not bytes:
        raise ResponseHeaderError(f"header names must be bytes, got {type(name).__name__}")
    if not TOKEN_RE.fullmatch(name):
        raise ResponseHeaderError(f"invalid header name {name!r}")
    if len(VALID_NAMES) < _NAMES_MAX:
        VALID_NAMES.add(name)


def check_value(value: Any, what: str = "header values") -> None:
    """Raise :class:`ResponseHeaderError` unless ``value`` is bytes without CR, LF or NUL."""
    if type(value) is not bytes:
        raise ResponseHeaderError(f"{what} must be bytes, got {type(value).__name__}")
    if b"\r" in value or b"\n" in value or b"\x00" in value:
        raise ResponseHeaderError(f"{what} must not contain CR, LF or NUL")


def field_lines(headers: Any, what: str = "header values") -> list[bytes]:
    """``name: value\\r\\n`` lines of checked header fields (informational responses, trailers)."""
    lines = []
    for name, value in headers:
        if name not in VALID_NAMES:
            check_name(name)
        check_value(value, what)
        lines.append(name + b": " + value + b"\r\n")
    return lines
