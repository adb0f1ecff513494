"""Sans-IO HTTP/1.1: request heads and chunked bodies in, response heads out.

No asyncio, no sockets, no clock. The parser is strict where RFC 9112/9110 say MUST and where
request smuggling lives: every rejection raises :class:`ProtocolError` with the status to answer
before the connection is closed. h11 is the reference parser: ``tests/test_http11_differential.py``
feeds the same corpus to both, split at every byte boundary, and allows only the documented cases
where this parser is *stricter* (see ``STRICTER_THAN_H11``).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any, NoReturn

from .errors import ProtocolError
from .fields import TOKEN_RE

__all__ = [
    "ChunkedDecoder", "Limits", "RequestHead", "not_http1", "parse_head", "status_line", "STRICTER_THAN_H11",
]

# Documented deviations: requests h11 accepts that we reject (never the other way round). The keys
# are referenced by the differential test corpus; docs/http1.md lists them for users.
STRICTER_THAN_H11: dict[str, str] = {
    "bare-lf": "a bare LF as line terminator in the head or in chunk lines (h11 accepts LF without CR): 400",
    "obs-fold": "obs-fold (continuation lines) in header or trailer fields: 400 instead of unfolding",
    "ctl-in-value": "control characters other than HTAB (0x01-0x08, 0x0E-0x1F, 0x7F) in header values: 400",
    "cl-and-te": "Content-Length and Transfer-Encoding together: 400 (RFC 9112 6.3 allows rejecting)",
    "cl-repeated": "repeated Content-Length, even with equal values, or a list value like '5, 5': 400",
    "cl-too-long": "Content-Length with more than 18 digits (h11: 20): 400",
    "te-http10": "Transfer-Encoding in an HTTP/1.0 request: 400 (RFC 9112 6.1: framing is faulty)",
    "target-form": "request-target that is not origin-form, absolute-form (with an authority and no "
                   "userinfo) or '*' (OPTIONS only), or that contains '#': 400",
    "connect": "CONNECT (authority-form): 405, this server is not a proxy",
    "host-value": "Host values outside RFC 3986 reg-name / IP-literal with an optional port: 400",
    "http-version": "HTTP versions other than 1.0 and 1.1 (h11 accepts any HTTP/d.d): 505",
    "chunk-ext": "chunk extensions containing control characters or a bare CR; chunk lines over 4096 "
                 "bytes: 400",
    "chunk-size-digits": "chunk sizes with more than 16 hex digits (h11: 20): 400",
    "early-reject": "an incomplete head that can no longer become valid (a bare CR, a byte no field may "
                    "contain) is rejected at once; h11 waits for its end (and then rejects it too, or for a "
                    "control character accepts it, see ctl-in-value)",
    "limits": "heads, request lines, fields and bodies over the configured limits: 431/414/413",
}

_VERSION_RE = re.compile(rb"HTTP/[0-9]\.[0-9]")
_HOST_RE = re.compile(rb"(?:\[[0-9A-Fa-f:.vV]+\]|[-A-Za-z0-9._~!$&'()*+,;=%]*)(?::[0-9]*)?")


def _bytes_except(*ranges: tuple[int, int]) -> bytes:
    allowed: set[int] = set()
    for lo, hi in ranges:
        allowed.update(range(lo, hi + 1))
    return bytes(b for b in range(256) if b in allowed)


# bytes.translate(None, X) deletes the bytes in X; a non-empty result means a forbidden byte.
_HEAD_ALLOWED = _bytes_except((0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x7E), (0x80, 0xFF))
_VCHAR = _bytes_except((0x21, 0x7E))
_HEX = b"0123456789abcdefABCDEF"
_FIELD_VALUE_ALLOWED = _bytes_except((0x09, 0x09), (0x20, 0x7E), (0x80, 0xFF))

_METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}
_KNOWN_NAMES = {
    n.encode(): n.lower().encode()
    for n in (
        "Host", "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Connection", "Content-Type",
        "Content-Length", "Cookie", "Referer", "Origin", "Cache-Control", "Pragma", "Upgrade",
        "Authorization", "If-None-Match", "If-Modified-Since", "Range", "X-Forwarded-For",
        "X-Forwarded-Proto", "X-Requested-With", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest",
        "Upgrade-Insecure-Requests", "DNT", "Transfer-Encoding", "Expect", "Forwarded", "X-Real-IP",
    )
}
_KNOWN_NAMES.update({v: v for v in list(_KNOWN_NAMES.values())})
_SPECIAL = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade"})


class Limits:
    """Size limits applied while parsing (all in bytes except ``max_fields``)."""

    __slots__ = ("max_head", "max_line", "max_fields", "max_field_size", "max_body", "memo")

    def __init__(self, max_head: int = 65536, max_line: int = 8190, max_fields: int = 100,
                 max_field_size: int = 8190, max_body: int = 0) -> None:
        self.max_head = max_head
        self.max_line = max_line
        self.max_fields = max_fields
        self.max_field_size = max_field_size
        self.max_body = max_body  # 0: unlimited
        # Parsed heads by their exact bytes (see parse_head). A parse depends only on the bytes and
        # these limits, so the memo lives here; the limits are not changed after construction.
        self.memo: dict[bytes, RequestHead] = {}


MEMO_ENTRIES = 512  # distinct heads remembered per Limits; the memo is emptied when it is full
MEMO_MAX_HEAD = 2048  # longer heads (big cookies, tokens) are rarely repeated byte for byte


DEFAULT_LIMITS = Limits()


class RequestHead:
    """A parsed request head. ``headers`` are ``(lower-cased name, value)`` byte pairs in order."""

    __slots__ = ("method", "target", "raw_path", "query", "http_version", "headers", "content_length",
                 "chunked", "keep_alive", "expect_continue", "upgrade", "host", "shared", "derived")

    def __init__(self, method: str, target: bytes, raw_path: bytes, query: bytes, http_version: str,
                 headers: list[tuple[bytes, bytes]], content_length: int, chunked: bool, keep_alive: bool,
                 expect_continue: bool, upgrade: bytes | None, host: bytes | None) -> None:
        self.method = method
        self.target = target
        self.raw_path = raw_path
        self.query = query
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length  # bytes of body when not chunked (0: no body)
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.upgrade = upgrade  # lower-cased Upgrade value when Connection: upgrade was sent
        self.host = host
        # A memoised head is shared by every request that sent the same bytes: it is read-only,
        # and ``headers`` must be copied before it is handed to application code.
        self.shared = False
        # Per-interface data computed once per shared head (e.g. the WSGI environ template).
        self.derived: Any = None

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0


def _fail(status: int, reason: str) -> ProtocolError:
    return ProtocolError(status, reason)


def check_incomplete(buf: bytes, limits: Limits, scan_from: int = 0) -> None:
    """Reject an incomplete head early when it can already never become valid.

    Only ``buf[scan_from:]`` (plus one byte before it) is inspected, so a client sending a head
    byte by byte costs linear, not quadratic, time.
    """
    if len(buf) > limits.max_head:
        raise _fail(431, "request head too large")
    if len(buf) > limits.max_line and buf.find(b"\r\n", 0, limits.max_line + 2) < 0:
        raise _fail(414, "request line too long")
    if buf and buf[0] < 0x21:  # like h11: a request line starts with a method token, never CR/LF/SP/CTL
        raise _fail(400, "empty line before the request line" if buf[0] in (0x0A, 0x0D)
                    else "invalid character before the request line")
    if scan_from > 0:
        if scan_from >= len(buf):
            return  # nothing new since the last scan
        new = buf[scan_from:]
        if buf[scan_from - 1] == 0x0D:  # a CR at the end of the previous scan must start a CRLF
            if new[:1] != b"\n":
                raise _fail(400, "bare CR in request head")
            new = b"\r" + new
        buf = new
    if buf.translate(None, _HEAD_ALLOWED):
        raise _fail(400, "invalid character in request head")
    crlf = buf.count(b"\r\n")
    if buf.count(b"\n") != crlf:
        raise _fail(400, "bare LF in request head")
    cr = buf.count(b"\r")
    if cr != crlf and not (cr == crlf + 1 and buf.endswith(b"\r")):
        raise _fail(400, "bare CR in request head")


def parse_head(buf: bytes, limits: Limits = DEFAULT_LIMITS, scan_from: int = 0) -> tuple[RequestHead, int] | None:
    """Parse a complete request head at the start of ``buf``.

    Returns ``(head, consumed)``, or None when more bytes are needed (the caller then passes
    ``scan_from=len(buf)`` next time, so incomplete heads are scanned once). Raises ProtocolError.
    """
    end = buf.find(b"\r\n\r\n", scan_from - 3 if scan_from > 3 else 0)
    if end < 0:
        check_incomplete(buf, limits, scan_from)
        return None
    if end + 4 > limits.max_head:
        raise _fail(431, "request head too large")
    head = buf[:end]
    memo = limits.memo
    parsed = memo.get(head)
    if parsed is not None:
        return parsed, end + 4
    result = _parse(head, end, limits)
    if end <= MEMO_MAX_HEAD:
        if len(memo) >= MEMO_ENTRIES:
            memo.clear()
        result.shared = True
        memo[head] = result
    return result, end + 4


def _parse(head: bytes, end: int, limits: Limits) -> RequestHead:
    crlf = head.count(b"\r\n")
    if head.count(b"\r") != crlf or head.count(b"\n") != crlf:
        raise _fail(400, "bare CR or LF in request head")
    if head.translate(None, _HEAD_ALLOWED):
        raise _fail(400, "invalid character in request head")

    line_end = head.find(b"\r\n")
    request_line = head if line_end < 0 else head[:line_end]
    if len(request_line) > limits.max_line:
        raise _fail(414, "request line too long")
    if not request_line:
        raise _fail(400, "empty line before the request line")
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise _fail(400, "malformed request line")
    raw_method, target, version = parts
    if version == b"HTTP/1.1":
        http_version = "1.1"
    elif version == b"HTTP/1.0":
        http_version = "1.0"
    elif _VERSION_RE.fullmatch(version):
        raise _fail(505, "HTTP version not supported")
    else:
        raise _fail(400, "malformed HTTP version")
    method = _METHODS.get(raw_method)
    if method is None:
        if not TOKEN_RE.fullmatch(raw_method):
            raise _fail(400, "invalid method")
        method = raw_method.decode("ascii")
    if not target or target.translate(None, _VCHAR):
        raise _fail(400, "invalid request target")

    # request-target forms (RFC 9112 3.2)
    if target[0] == 0x2F:  # "/": origin-form
        raw_path, _, query = target.partition(b"?")
    elif target == b"*" and method == "OPTIONS":
        raw_path, query = b"*", b""
    elif target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
        rest = target.split(b"://", 1)[1]
        slash = len(rest)
        for sep in (b"/", b"?"):
            i = rest.find(sep)
            if 0 <= i < slash:
                slash = i
        if slash == 0:
            raise _fail(400, "absolute-form target without authority")
        if b"@" in rest[:slash]:
            raise _fail(400, "userinfo in absolute-form target")  # RFC 9110 4.2.4
        path_and_query = rest[slash:] or b"/"
        if path_and_query[0] == 0x3F:  # "?"
            path_and_query = b"/" + path_and_query
        raw_path, _, query = path_and_query.partition(b"?")
    elif method == "CONNECT":
        raise _fail(405, "CONNECT is not supported")
    else:
        raise _fail(400, "invalid request target form")
    if b"#" in target:
        raise _fail(400, "fragment in request target")

    headers: list[tuple[bytes, bytes]] = []
    content_length = 0
    seen_cl = False
    chunked = False
    te_values: list[bytes] | None = None
    keep_alive = http_version == "1.1"
    expect_continue = False
    upgrade_value: bytes | None = None
    connection_upgrade = False
    host: bytes | None = None
    hosts = 0
    if line_end >= 0:
        fields = head[line_end + 2:].split(b"\r\n")
        if len(fields) > limits.max_fields:
            raise _fail(431, "too many header fields")
        max_field = limits.max_field_size
        known = _KNOWN_NAMES
        for line in fields:
            if len(line) > max_field:
                raise _fail(431, "header field too large")
            name, colon, value = line.partition(b":")
            lname = known.get(name)
            if lname is None:
                if line[:1] in (b" ", b"\t"):
                    raise _fail(400, "obsolete line folding in header field")
                if not colon:
                    raise _fail(400, "header field without colon")
                if not TOKEN_RE.fullmatch(name):
                    raise _fail(400, "invalid header field name")
                lname = name.lower()
            elif not colon:
                raise _fail(400, "header field without colon")
            value = value.strip(b" \t")
            if value.translate(None, _FIELD_VALUE_ALLOWED):
                raise _fail(400, "invalid character in header value")
            headers.append((lname, value))
            if lname in _SPECIAL:
                if lname == b"host":
                    hosts += 1
                    if hosts > 1:
                        raise _fail(400, "multiple Host header fields")
                    if not _HOST_RE.fullmatch(value):
                        raise _fail(400, "invalid Host header value")
                    host = value
                elif lname == b"content-length":
                    if seen_cl:
                        raise _fail(400, "multiple Content-Length header fields")
                    seen_cl = True
                    if not value or len(value) > 18 or not value.isdigit():
                        raise _fail(400, "invalid Content-Length")
                    content_length = int(value)
                elif lname == b"transfer-encoding":
                    value = value.lower()
                    headers[-1] = (lname, value)  # like h11: transfer codings are case-insensitive
                    if te_values is None:
                        te_values = [value]
                    else:
                        te_values.append(value)  # repeated field lines form one list (RFC 9110 5.3)
                elif lname == b"connection":
                    for token in value.lower().split(b","):
                        token = token.strip(b" \t")
                        if token == b"close":
                            keep_alive = False
                        elif token == b"keep-alive":
                            if http_version == "1.0":
                                keep_alive = True
                        elif token == b"upgrade":
                            connection_upgrade = True
                elif lname == b"expect":
                    if value.lower() == b"100-continue" and http_version == "1.1":
                        expect_continue = True
                else:  # upgrade
                    upgrade_value = value.lower()
        if te_values is not None:
            if te_values != _CHUNKED:
                _refuse_codings(te_values)
            chunked = True
            if seen_cl:
                raise _fail(400, "both Content-Length and Transfer-Encoding")
            if http_version == "1.0":
                raise _fail(400, "Transfer-Encoding in an HTTP/1.0 request")
        if seen_cl and content_length and limits.max_body and content_length > limits.max_body:
            raise _fail(413, "request body too large")
    if hosts == 0 and http_version == "1.1":
        raise _fail(400, "missing Host header")
    if not connection_upgrade:
        upgrade_value = None
    return RequestHead(method, target, raw_path, query, http_version, headers, content_length, chunked,
                       keep_alive, expect_continue, upgrade_value, host)


_CHUNKED = [b"chunked"]


def _refuse_codings(values: list[bytes]) -> NoReturn:
    """A Transfer-Encoding other than exactly ``chunked`` (``values``: its lower-cased field lines) is
    refused. RFC 9112 6.3: when chunked is not the final coding the body length cannot be determined:
    400, and the connection is closed; so is a list with empty elements (``chunked,``, which h11 refuses
    too). RFC 9112 6.1: a coding this server does not decode (``gzip``, ``x, chunked``): 501."""
    codings = [part.strip(b" \t") for value in values for part in value.split(b",")]
    if b"" in codings:
        raise _fail(400, "empty element in Transfer-Encoding")
    if b"chunked" in codings[:-1]:
        raise _fail(400, "Transfer-Encoding: chunked is not the final coding")
    raise _fail(501, "only Transfer-Encoding: chunked is supported")


def not_http1(buf: bytes) -> bool:
    """True when the first line in ``buf`` has the three parts of a request line but the last is no HTTP
    version at all (``INVALID CONNECTION PREFACE``): no HTTP/1.x client sends that. On a port that also
    speaks HTTP/2 by prior knowledge it is an invalid HTTP/2 connection preface, not a bad request.
    ``GET /`` (HTTP/0.9) or ``GET / HTTP/2.0`` and ``GET / http/1.1`` stay HTTP/1 errors (400, 505)."""
    end = buf.find(b"\n")
    line = (buf if end < 0 else buf[:end]).rstrip(b"\r")
    parts = line.split(b" ")
    return len(parts) == 3 and all(parts) and parts[2][:5].upper() != b"HTTP/"


class ChunkedDecoder:
    """Decodes a chunked request body incrementally.

    ``feed(data)`` returns ``(chunks, rest)``: decoded body pieces, and the bytes after the
    final chunk and trailers once the body is complete (``done`` is then True). Trailer
    fields are validated and kept in ``trailers``.
    """

    __slots__ = ("_state", "_remaining", "_buf", "done", "trailers", "_limits", "_trailer_size")

    _SIZE, _DATA, _CRLF, _TRAILER = 0, 1, 2, 3

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._state = self._SIZE
        self._remaining = 0
        self._buf = b""
        self.done = False
        self.trailers: list[tuple[bytes, bytes]] = []
        self._limits = limits
        self._trailer_size = 0

    def feed(self, data: bytes) -> tuple[list[bytes], bytes]:
        out: list[bytes] = []
        if self.done:
            return out, data
        buf = self._buf + data if self._buf else data
        self._buf = b""
        pos = 0
        n = len(buf)
        while pos < n:
            state = self._state
            if state == self._DATA:
                take = min(self._remaining, n - pos)
                out.append(buf[pos:pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = self._CRLF
            elif state == self._CRLF:
                if n - pos < 2:
                    if buf[pos:] != b"\r":
                        raise _fail(400, "chunk data not followed by CRLF")
                    break
                if buf[pos:pos + 2] != b"\r\n":
                    raise _fail(400, "chunk data not followed by CRLF")
                pos += 2
                self._state = self._SIZE
            else:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    tail = buf[pos:]
                    if len(tail) > 4096:
                        raise _fail(400 if state == self._SIZE else 431, "chunk line too long")
                    if b"\n" in tail or b"\r" in tail[:-1]:
                        raise _fail(400, "bare CR or LF in chunked body")
                    break
                line = buf[pos:eol]
                pos = eol + 2
                if b"\r" in line or b"\n" in line:
                    raise _fail(400, "bare CR or LF in chunked body")
                if state == self._SIZE:
                    if len(line) > 4096:
                        raise _fail(400, "chunk line too long")
                    self._parse_size(line)
                elif not line:
                    self.done = True
                    return out, buf[pos:]
                else:
                    self._parse_trailer(line)
        self._buf = buf[pos:]
        return out, b""

    def _parse_size(self, line: bytes) -> None:
        size = line
        ext = b""
        semi = line.find(b";")
        if semi >= 0:
            size, ext = line[:semi], line[semi:]
        else:
            size = line.rstrip(b" \t")
        if not size or len(size) > 16 or size.translate(None, _HEX):
            raise _fail(400, "invalid chunk size")
        if ext and ext.translate(None, _FIELD_VALUE_ALLOWED):
            raise _fail(400, "invalid chunk extension")
        value = int(size, 16)
        if value == 0:
            self._state = self._TRAILER
        else:
            self._remaining = value
            self._state = self._DATA

    def _parse_trailer(self, line: bytes) -> None:
        self._trailer_size += len(line) + 2
        if self._trailer_size > self._limits.max_field_size or len(self.trailers) >= self._limits.max_fields:
            raise _fail(431, "trailer section too large")
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN_RE.fullmatch(name):
            raise _fail(400, "invalid trailer field")
        value = value.strip(b" \t")
        if value.translate(None, _FIELD_VALUE_ALLOWED):
            raise _fail(400, "invalid character in trailer value")
        self.trailers.append((name.lower(), value))


# -- responses ------------------------------------------------------------------------------------

NO_BODY_STATUS = frozenset({204, 304})  # with 1xx: responses that never have a body (RFC 9110 §6.4.1)
_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    """``b"HTTP/1.1 200 OK\\r\\n"``, cached per status."""
    line = _STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = f"HTTP/1.1 {status} {phrase}\r\n".encode("latin-1")
        if 100 <= status <= 999:
            _STATUS_LINES[status] = line
    return line


def error_response(status: int, reason: str = "", date: bytes = b"", extra: bytes = b"") -> bytes:
    """A complete ``Connection: close`` response for protocol errors (plain-text body)."""
    body = f"{status} {HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ''}\n"
    if reason:
        body += reason + "\n"
    data = body.encode("latin-1", "replace")
    return b"".join((
        status_line(status), date, extra,
        b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: ",
        str(len(data)).encode(), b"\r\n\r\n", data,
    ))
