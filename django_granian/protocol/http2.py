"""Sans-IO pieces of the HTTP/2 server around the connection in :mod:`.h2conn`.

:mod:`.h2conn` owns framing, the stream state machines and flow-control accounting. This module adds
what a server needs on top, without sockets, an event loop or clock reads (time is passed in):

* :func:`connection_options`: the connection's settings derived from
  :class:`~django_granian.config.Config` (``--http2-*`` options);
* :func:`request_head`: a decoded request header block -> the protocol-neutral
  :class:`~django_granian.protocol.http11.RequestHead` (``http_version`` ``"2"``), so requests go
  through the same interface and request cycle as HTTP/1.1;
* :func:`response_headers`: ASGI/WSGI response headers -> a valid HTTP/2 header list (lower-case
  names, no connection-specific fields, CR/LF/NUL rejected), and :func:`response_block`, the same
  HPACK-encoded and memoised per header set;
* :class:`FloodGuard`: token buckets against rapid reset (CVE-2023-44487) and control-frame floods.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from hpack import Encoder

from .errors import ProtocolError
from .fields import ResponseHeaderError, check_name, lowercase_token
from .http11 import RequestHead

__all__ = ["FloodGuard", "ResponseHeaderError", "connection_options", "encode_fields", "request_head",
           "response_block", "response_headers"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Fields that are meaningful for one HTTP/1.1 connection only (RFC 9113 section 8.2.2).
CONNECTION_SPECIFIC = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                                 b"upgrade"})
_BAD_VALUE_RE = re.compile(rb"[\r\n\x00]")
_GOOD_NAMES: set[bytes] = set()
_STATUS = {code: str(code).encode() for code in range(100, 1000)}


def connection_options(config: Any, websockets: bool = False) -> dict[str, Any]:
    """Keyword arguments of :class:`~.h2conn.H2ServerConnection` from the ``--http2-*`` options:
    the SETTINGS we announce and the connection receive window."""
    return {
        "max_concurrent_streams": config.http2_max_concurrent_streams,
        "initial_window_size": config.http2_initial_stream_window_size,
        "max_frame_size": config.http2_max_frame_size,
        "max_header_list_size": config.http2_max_headers_size,
        "connection_window": config.http2_initial_connection_window_size,
        "enable_connect_protocol": websockets,  # RFC 8441 extended CONNECT
    }


_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})
_VALUE_BAD_RE = re.compile(rb"[\r\n\x00]|^[ \t]|[ \t]$")
_GOOD_REQUEST_NAMES: set[bytes] = set()


def _malformed(reason: str) -> ProtocolError:
    return ProtocolError(400, reason)


def request_head(headers: Iterable[tuple[bytes, bytes]], end_stream: bool, version: str = "2") -> RequestHead:
    """Validate an h2 request header block (RFC 9113 section 8.2/8.3, RFC 8441) and build a
    :class:`RequestHead` from it; :class:`ProtocolError` means a malformed request (the caller
    resets the stream with PROTOCOL_ERROR). HTTP/3 requests (RFC 9114 section 4.3, RFC 9220) follow
    the same rules and come through here with ``version`` "3".

    h2's own inbound validation is turned off: this single pass does the same checks.
    ``:authority`` becomes a ``host`` header when the request has none (what HTTP/1.1 apps and
    the ASGI spec expect); ``cookie`` crumbs are joined with ``"; "`` (section 8.2.3). A request
    whose HEADERS frame did not end the stream has a body: its length is ``content-length`` when
    given, otherwise unknown (``chunked`` is set, meaning "read until the end of the stream").
    """
    method = scheme = path = authority = protocol = None
    regular: list[tuple[bytes, bytes]] = []
    host = None
    content_length = -1
    expect = False
    cookies: list[bytes] | None = None
    good = _GOOD_REQUEST_NAMES
    for name, value in headers:
        if _VALUE_BAD_RE.search(value) is not None:
            raise _malformed("invalid header value")
        if name[:1] == b":":
            if regular or cookies is not None:
                raise _malformed("pseudo-header after regular header")
            if name == b":method":
                if method is not None:
                    raise _malformed("duplicate :method")
                method = value
            elif name == b":path":
                if path is not None:
                    raise _malformed("duplicate :path")
                path = value
            elif name == b":scheme":
                if scheme is not None:
                    raise _malformed("duplicate :scheme")
                scheme = value
            elif name == b":authority":
                if authority is not None:
                    raise _malformed("duplicate :authority")
                authority = value
            elif name == b":protocol":
                if protocol is not None:
                    raise _malformed("duplicate :protocol")
                protocol = value
            else:
                raise _malformed(f"invalid pseudo-header {name!r}")
            continue
        if name not in good:
            if not lowercase_token(name):
                raise _malformed("invalid header name")
            if name in CONNECTION_SPECIFIC:
                raise _malformed("connection-specific header")
            if name != b"te" and name != b"host" and name != b"content-length" and name != b"expect" \
                    and name != b"cookie" and len(good) < 1024:
                good.add(name)
        if name == b"host":
            host = value
        elif name == b"content-length":
            if not value.isdigit() or (content_length >= 0 and int(value) != content_length):
                raise _malformed("invalid content-length")
            content_length = int(value)
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
        elif name == b"te":
            if value.lower() != b"trailers":
                raise _malformed("te other than trailers")
        elif name == b"cookie":
            if cookies is None:
                cookies = [value]
            else:
                cookies.append(value)
            continue
        regular.append((name, value))
    if method is None:
        raise _malformed("missing :method")
    if method == b"CONNECT":
        if protocol is None:
            if scheme is not None or path is not None or authority is None:
                raise _malformed("CONNECT needs :authority only")
            path = b""
        elif scheme is None or path is None or authority is None:
            raise _malformed("extended CONNECT needs :scheme, :path and :authority")
    else:
        if protocol is not None:
            raise _malformed(":protocol outside CONNECT")
        if scheme is None or not path:
            raise _malformed("missing :scheme or :path")
    if cookies is not None:
        regular.append((b"cookie", b"; ".join(cookies)))
    if host is None and authority is not None:
        host = authority
        regular.insert(0, (b"host", authority))
    if path == b"*" or not path:
        raw_path, query = path, b""
    else:
        raw_path, _, query = path.partition(b"?")
    if end_stream:
        length, chunked = 0, False
    elif content_length >= 0:
        length, chunked = content_length, False
    else:
        length, chunked = 0, True
    return RequestHead(method.decode("latin-1"), path, raw_path, query, version, regular, length, chunked, True,
                       expect and not end_stream, protocol.lower() if protocol is not None else None, host)


def check_trailers(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Request trailers must not carry pseudo-headers or invalid fields (they are then dropped)."""
    for name, value in headers:
        if name[:1] == b":" or not lowercase_token(name) or _VALUE_BAD_RE.search(value) is not None:
            raise _malformed("invalid trailer field")


def response_headers(status: int, headers: Iterable[tuple[bytes, bytes]], defaults: list[tuple[bytes, bytes]],
                     default_names: frozenset[bytes]) -> tuple[list[tuple[bytes, bytes]], int]:
    """ASGI-style response headers -> ``(h2 header list, content-length or -1)``.

    Names are lower-cased; HTTP/1.1 connection-specific fields are dropped; ``defaults`` (date,
    server) are added unless the application set a field of that name.
    """
    out = [(b":status", _STATUS.get(status) or _bad_status(status))]
    append = out.append
    content_length = -1
    seen: set[bytes] | None = None
    good = _GOOD_NAMES
    for name, value in headers:
        if name not in good:
            name = _check_name(name)
        if name in default_names:
            seen = {name} if seen is None else seen | {name}
        elif name in CONNECTION_SPECIFIC:
            continue
        elif name == b"content-length":
            if type(value) is not bytes or not value.isdigit():
                raise ResponseHeaderError(f"invalid content-length {value!r}")
            content_length = int(value)
        if type(value) is not bytes:
            raise ResponseHeaderError(f"header values must be bytes, got {type(value).__name__}")
        if _BAD_VALUE_RE.search(value):
            raise ResponseHeaderError("response header values must not contain CR, LF or NUL")
        append((name, value))
    if seen is None:
        out.extend(defaults)
    else:
        out.extend(pair for pair in defaults if pair[0] not in seen)
    return out, content_length


def trailer_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in headers:
        if name not in _GOOD_NAMES:
            name = _check_name(name)
        if name in CONNECTION_SPECIFIC:
            continue
        if type(value) is not bytes or _BAD_VALUE_RE.search(value):
            raise ResponseHeaderError("trailer values must be bytes without CR, LF or NUL")
        out.append((name, value))
    return out


def informational_headers(status: int, headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out = [(b":status", _STATUS.get(status) or _bad_status(status))]
    out.extend(trailer_headers(headers))
    return out


def _bad_status(status: Any) -> bytes:
    raise ResponseHeaderError(f"invalid status {status!r}")


def _check_name(name: Any) -> bytes:
    check_name(name)
    lname = name.lower()
    if lname == name and len(_GOOD_NAMES) < 1024:
        _GOOD_NAMES.add(name)
    return lname


class FloodGuard:
    """Token buckets that detect abusive peers; ``now`` is passed in (seconds, any monotonic base).

    * remote stream resets (rapid reset, CVE-2023-44487): a burst of ``reset_burst`` is allowed,
      refilled at ``reset_rate`` per second;
    * control frames that make us do work or write without a request (SETTINGS, PING, PRIORITY,
      empty DATA frames, stream errors we answer with RST_STREAM): ``control_burst`` /
      ``control_rate``.

    ``reset()`` / ``control()`` return False once a bucket runs dry: the connection should be
    closed with GOAWAY ENHANCE_YOUR_CALM.
    """

    __slots__ = ("reset_tokens", "reset_burst", "reset_rate", "control_tokens", "control_burst", "control_rate",
                 "last")

    def __init__(self, now: float, reset_burst: int = 200, reset_rate: float = 20.0, control_burst: int = 1000,
                 control_rate: float = 100.0) -> None:
        self.reset_burst = self.reset_tokens = float(reset_burst)
        self.reset_rate = reset_rate
        self.control_burst = self.control_tokens = float(control_burst)
        self.control_rate = control_rate
        self.last = now

    def _refill(self, now: float) -> None:
        elapsed = now - self.last
        if elapsed > 0:
            self.last = now
            self.reset_tokens = min(self.reset_burst, self.reset_tokens + elapsed * self.reset_rate)
            self.control_tokens = min(self.control_burst, self.control_tokens + elapsed * self.control_rate)

    def reset(self, now: float, count: int = 1) -> bool:
        self._refill(now)
        self.reset_tokens -= count
        return self.reset_tokens >= 0

    def control(self, now: float, count: int = 1) -> bool:
        self._refill(now)
        self.control_tokens -= count
        return self.control_tokens >= 0


# -- HPACK encoding of responses -------------------------------------------------------------------
#
# Responses are encoded *statelessly*: with our encoder's dynamic table set to size 0, every field
# is either a static-table reference or a literal, so a field always encodes to the same bytes and a
# header set that repeats (every response of an app, give or take the Date) costs a dict lookup,
# for every connection alike. The one piece of per-connection state is the table size update to 0
# that starts the first header block of a connection (RFC 7541 section 6.3;
# ``H2ServerConnection.header_prefix``), after which the peer keeps none of our fields either.
# nginx does the same (static table and literals only); what is lost is the peer-side compression
# of repeated response fields, tens of bytes per response.

_ENCODER = Encoder()
_ENCODER.header_table_size = 0
TABLE_SIZE_ZERO = _ENCODER.encode([])  # the "dynamic table size update" to 0, as hpack encodes it
_FIELDS: dict[tuple[bytes, bytes], bytes] = {}
_RESPONSES: dict[Any, list[Any]] = {}  # (status, headers) -> [response_fields(), response_block() or None]
CACHE_ENTRIES = 4096


def encode_field(name: bytes, value: bytes) -> bytes:
    """One field, HPACK-encoded by hpack without the dynamic table (memoised)."""
    key = (name, value)
    block = _FIELDS.get(key)
    if block is None:
        block = _ENCODER.encode([key])
        if len(_FIELDS) >= CACHE_ENTRIES:
            _FIELDS.clear()
        _FIELDS[key] = block
    return block


def encode_fields(fields: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join([encode_field(name, value) for name, value in fields])


def _response_entry(status: int, headers: Any) -> list[Any]:
    """The memo of one ``(status, headers)``: ``[(fields, length, present), (block, length, present) or None]``."""
    if type(headers) is not tuple:
        headers = tuple(headers)  # any iterable, read once (a generator must not be consumed twice)
    try:
        key: Any = (status, headers)
        entry = _RESPONSES.get(key)
    except TypeError:  # unhashable pairs (lists): validate and encode every time
        key = entry = None
    if entry is None:
        fields, length = response_headers(status, headers, [], _DEFAULT_NAMES)
        present = 0
        for name, _ in fields:
            if name == b"date":
                present |= 1
            elif name == b"server":
                present |= 2
        entry = [(fields, length, present), None]
        if key is not None:
            if len(_RESPONSES) >= CACHE_ENTRIES:
                _RESPONSES.clear()
            _RESPONSES[key] = entry
    return entry


def response_fields(status: int, headers: Any) -> tuple[list[tuple[bytes, bytes]], int, int]:
    """Validated response fields (with ``:status``) as a list, memoised per ``(status, headers)``:
    ``(fields, content-length or -1, defaults present)``, ``present`` as in :func:`response_block`.
    The list is shared: copy it before adding fields. HTTP/3 hands it to QPACK."""
    return _response_entry(status, headers)[0]  # type: ignore[no-any-return]


def response_block(status: int, headers: Any) -> tuple[bytes, int, int]:
    """Validated and HPACK-encoded response headers, memoised per ``(status, headers)``:
    ``(block, content-length or -1, defaults present)`` where the last is a bit mask of the
    default fields the app set itself (1: ``date``, 2: ``server``); the caller appends the others.
    Raises :class:`ResponseHeaderError` like :func:`response_headers`."""
    entry = _response_entry(status, headers)
    info = entry[1]
    if info is None:
        fields, length, present = entry[0]
        info = entry[1] = (encode_fields(fields), length, present)
    return info  # type: ignore[no-any-return]


_DEFAULT_NAMES = frozenset({b"date", b"server"})
