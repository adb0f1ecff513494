"""Table-driven unit tests of the sans-IO HTTP/1.1 parser: fields, statuses, limits, chunked bodies."""

from __future__ import annotations

import pytest

from django_granian.protocol import http11
from django_granian.protocol.errors import ProtocolError
from django_granian.protocol.http11 import ChunkedDecoder, Limits, error_response, parse_head, status_line

H = b"Host: x\r\n"


def parse(data: bytes, limits: Limits | None = None):
    result = parse_head(data, limits or Limits())
    assert result is not None
    return result[0]


def status_of(data: bytes, limits: Limits | None = None) -> int:
    """The error status for ``data``, fed whole and then byte by byte (the incremental path)."""
    limits = limits or Limits()
    with pytest.raises(ProtocolError) as whole:
        parse_head(data, limits)
    buf = b""
    scan = 0
    incremental = None
    for i in range(len(data)):
        buf += data[i:i + 1]
        try:
            if parse_head(buf, limits, scan) is None:
                scan = len(buf)
                continue
        except ProtocolError as exc:
            incremental = exc.status
            break
    assert incremental == whole.value.status, "incremental parse disagrees"
    return whole.value.status


@pytest.mark.parametrize("data,fields", [
    (b"GET /a%20b?x=1 HTTP/1.1\r\n" + H + b"\r\n",
     {"method": "GET", "raw_path": b"/a%20b", "query": b"x=1", "http_version": "1.1", "keep_alive": True,
      "content_length": 0, "chunked": False, "host": b"x", "upgrade": None, "expect_continue": False}),
    (b"GET http://h.example/p?q HTTP/1.1\r\n" + H + b"\r\n",
     {"raw_path": b"/p", "query": b"q", "target": b"http://h.example/p?q"}),
    (b"GET https://h.example HTTP/1.1\r\n" + H + b"\r\n", {"raw_path": b"/", "query": b""}),
    (b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", {"raw_path": b"*", "method": "OPTIONS"}),
    (b"GET / HTTP/1.0\r\n\r\n", {"http_version": "1.0", "keep_alive": False, "host": None}),
    (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", {"keep_alive": True}),
    (b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", {"keep_alive": False}),
    (b"GET / HTTP/1.1\r\n" + H + b"Connection: foo, CLOSE\r\n\r\n", {"keep_alive": False}),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 12\r\nExpect: 100-Continue\r\n\r\n",
     {"content_length": 12, "expect_continue": True}),
    (b"POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n", {"expect_continue": False}),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n", {"chunked": True, "content_length": 0}),
    (b"GET /ws HTTP/1.1\r\n" + H + b"Connection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
     {"upgrade": b"websocket"}),
    (b"GET /ws HTTP/1.1\r\n" + H + b"Upgrade: websocket\r\n\r\n", {"upgrade": None}),  # no Connection: upgrade
    (b"PURGE / HTTP/1.1\r\n" + H + b"\r\n", {"method": "PURGE"}),
])
def test_fields(data: bytes, fields: dict) -> None:
    head = parse(data)
    for name, value in fields.items():
        assert getattr(head, name) == value, name


def test_headers_lowercased_in_order_values_stripped() -> None:
    head = parse(b"GET / HTTP/1.1\r\nHost: x\r\nX-Foo:  a b \t\r\nCONTENT-TYPE: t\r\nx-foo: c\r\n\r\n")
    assert head.headers == [(b"host", b"x"), (b"x-foo", b"a b"), (b"content-type", b"t"), (b"x-foo", b"c")]


def test_consumed_bytes_stop_at_the_head() -> None:
    data = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\n"
    head, used = parse_head(data)  # type: ignore[misc]
    assert data[used:] == b"GET /2 HTTP/1.1\r\n"


def test_identical_heads_are_parsed_once_and_shared() -> None:
    limits = Limits()
    first, used1 = parse_head(b"GET /m?x=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", limits)  # type: ignore[misc]
    again, used2 = parse_head(b"GET /m?x=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\nGET /next", limits)  # type: ignore[misc]
    assert again is first and first.shared and used1 == used2 == 45
    other = parse(b"GET /m?x=2 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", limits)
    assert other is not first and other.query == b"x=2"
    # the memo belongs to one set of limits: a parse under other limits is its own
    assert parse(b"GET /m?x=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", Limits()) is not first
    # a long head (big cookie) is not remembered, and the memo never outgrows its bound
    long_head = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * (http11.MEMO_MAX_HEAD + 1) + b"\r\n\r\n"
    assert not parse(long_head, limits).shared
    for i in range(http11.MEMO_ENTRIES + 10):
        parse(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i, limits)
        assert len(limits.memo) <= http11.MEMO_ENTRIES
    # rejected heads are never remembered: the same bytes fail every time
    for _ in range(2):
        assert status_of(b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", limits) == 400


@pytest.mark.parametrize("data,limits,status", [
    (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n" + H + b"\r\n", Limits(max_line=64), 414),
    (b"GET /" + b"a" * 100, Limits(max_line=64), 414),  # detected before the line ends
    (b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(10)) + b"\r\n",
     Limits(max_fields=5), 431),
    (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 100 + b"\r\n\r\n", Limits(max_field_size=50), 431),
    (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 3000 + b"\r\n\r\n", Limits(max_head=2048), 431),
    (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 3000, Limits(max_head=2048), 431),  # incomplete
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 101\r\n\r\n", Limits(max_body=100), 413),
])
def test_limits(data: bytes, limits: Limits, status: int) -> None:
    assert status_of(data, limits) == status


def test_limits_allow_up_to_the_limit() -> None:
    assert parse(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n", Limits(max_body=100))
    line = b"GET /" + b"a" * 50 + b" HTTP/1.1"
    assert parse(line + b"\r\n" + H + b"\r\n", Limits(max_line=len(line)))


@pytest.mark.parametrize("data,status", [
    (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    # Transfer-Encoding: chunked not final (RFC 9112 6.3) -> 400; a coding we do not decode -> 501
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: x, chunked\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: Chunked, Identity\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked,\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n\r\n", 400),
    (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 405),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X: \x01\r\n\r\n", 400),
    (b"\r\nGET / HTTP/1.1\r\n" + H + b"\r\n", 400),
])
def test_error_statuses(data: bytes, status: int) -> None:
    assert status_of(data) == status


def feed_all(data: bytes, limits: Limits | None = None, step: int = 0) -> tuple[bytes, bytes, list]:
    dec = ChunkedDecoder(limits or Limits())
    pieces = [data] if not step else [data[i:i + step] for i in range(0, len(data), step)]
    body = []
    rest = b""
    for piece in pieces:
        chunks, rest = dec.feed(piece)
        body.extend(chunks)
        if dec.done:
            break
    assert dec.done
    return b"".join(body), rest, dec.trailers


@pytest.mark.parametrize("step", [0, 1, 2, 3, 7])
def test_chunked_decoder(step: int) -> None:
    data = b"5;x=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Sum: 42\r\n\r\nNEXT"
    body, rest, trailers = feed_all(data, step=step)
    assert body == b"hello world"
    assert trailers == [(b"x-sum", b"42")]
    if not step:
        assert rest == b"NEXT"


@pytest.mark.parametrize("data,limits,status", [
    (b"0\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10)) + b"\r\n", Limits(max_fields=5), 431),
    (b"0\r\nX: " + b"v" * 200 + b"\r\n\r\n", Limits(max_field_size=100), 431),
    (b"1" * 5000, Limits(), 400),  # chunk-size line never ends
    (b"5;" + b"e" * 5000 + b"\r\n", Limits(), 400),
    (b"5\r\nhello\r\r", Limits(), 400),
])
def test_chunked_decoder_errors(data: bytes, limits: Limits, status: int) -> None:
    with pytest.raises(ProtocolError) as exc:
        ChunkedDecoder(limits).feed(data)
    assert exc.value.status == status


def test_status_line_and_error_response() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(299) == b"HTTP/1.1 299 \r\n"
    resp = error_response(431, "too big", b"date: x\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\ndate: x\r\n")
    assert b"connection: close" in head
    assert b"content-length: %d" % len(body) in head


@pytest.mark.parametrize("data,expected", [
    (b"INVALID CONNECTION PREFACE\r\n\r\n", True),  # h2spec 3.5/2
    (b"A B C\r\n", True),
    (b"A B C", True),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),
    (b"GET / http/1.1\r\n\r\n", False),  # a (mis-cased) HTTP version: an HTTP/1 error
    (b"GET / HTTP/2.0\r\n\r\n", False),
    (b"GET /\r\n\r\n", False),  # HTTP/0.9 form
    (b"GET  / HTTP/1.1\r\n\r\n", False),
    (b"PRI * HTTP/2.0\r\n\r\n", False),
])
def test_not_http1(data: bytes, expected: bool) -> None:
    from django_granian.protocol.http11 import not_http1

    assert not_http1(data) is expected
