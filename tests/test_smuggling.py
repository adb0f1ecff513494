"""Malformed and smuggling requests against the REAL server (raw sockets).

Each case must get the right 4xx/5xx status and a closed connection, and the bad request must never
reach the application: the test app counts the requests it sees (``GET /__count``) and every case
states how many requests may reach it (the valid ones in front of the bad one, or the carrier of a
bad chunked body, which the app sees as a disconnect, never as a second request).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from .conftest import ServerProcess, start_server
from .core_client import Conn, get

H = b"Host: x\r\n"
CHUNKED = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def post(*headers: bytes, body: bytes = b"", version: bytes = b"1.1") -> bytes:
    return b"POST /echo HTTP/" + version + b"\r\n" + H + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


# (name, raw bytes, expected statuses in order (the last one is the rejection), requests reaching the app)
CASES: list[tuple[str, bytes, list[int], int]] = [
    # framing ambiguity (CL.TE / TE.CL / TE.TE)
    ("cl-te", post(b"Content-Length: 13", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n" + SMUGGLED), [400], 0),
    ("te-cl", post(b"Transfer-Encoding: chunked", b"Content-Length: 4", body=b"5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n"),
     [400], 0),
    ("te-chunked-identity", post(b"Transfer-Encoding: chunked, identity", body=b"0\r\n\r\n"), [400], 0),
    ("te-chunked-not-final", post(b"Transfer-Encoding: chunked, gzip", body=b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED),
     [400], 0),
    ("te-chunked-then-gzip-lines", post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip", body=b"0\r\n\r\n"),
     [400], 0),
    ("te-gzip-chunked", post(b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"), [501], 0),
    ("te-trailing-comma", post(b"Transfer-Encoding: chunked,", body=b"0\r\n\r\n"), [400], 0),
    ("te-identity", post(b"Transfer-Encoding: identity", body=b"0\r\n\r\n"), [501], 0),
    ("te-x-chunked", post(b"Transfer-Encoding: x, chunked", body=b"0\r\n\r\n"), [501], 0),
    ("te-gzip", post(b"Transfer-Encoding: gzip", body=b"0\r\n\r\n"), [501], 0),
    ("te-vt", post(b"Transfer-Encoding: \x0bchunked", body=b"0\r\n\r\n"), [400], 0),
    ("te-duplicate", post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
     [400], 0),
    ("te-space-before-colon", post(b"Transfer-Encoding : chunked", body=b"0\r\n\r\n"), [400], 0),
    ("te-folded", post(b"X-A: b", b" Transfer-Encoding: chunked", body=b"0\r\n\r\n"), [400], 0),
    ("te-http10", post(b"Transfer-Encoding: chunked", body=b"0\r\n\r\n", version=b"1.0"), [400], 0),
    ("te-underscore-body-parsed-as-request", post(b"Transfer_Encoding: chunked", body=b"0\r\n\r\n"), [200, 400], 1),
    # Content-Length
    ("cl-dup-equal", post(b"Content-Length: 5", b"Content-Length: 5", body=b"hello"), [400], 0),
    ("cl-list", post(b"Content-Length: 5, 5", body=b"hello"), [400], 0),
    ("cl-dup-differ", post(b"Content-Length: 5", b"Content-Length: 50", body=b"hello"), [400], 0),
    ("cl-plus", post(b"Content-Length: +5", body=b"hello"), [400], 0),
    ("cl-negative", post(b"Content-Length: -5", body=b"hello"), [400], 0),
    ("cl-hex", post(b"Content-Length: 0x5", body=b"hello"), [400], 0),
    ("cl-huge", post(b"Content-Length: 99999999999999999999", body=b"hello"), [400], 0),
    ("cl-inner-space", post(b"Content-Length: 1 0", body=b"hello"), [400], 0),
    ("cl-empty", post(b"Content-Length:", body=b"hello"), [400], 0),
    ("cl-space-before-colon", post(b"Content-Length : 5", body=b"hello"), [400], 0),
    # header syntax
    ("obs-fold", get("/", "X-A: a", " b").replace(b"\r\n\r\n", b"\r\n\r\n"), [400], 0),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", [400], 0),
    ("bare-lf", b"GET / HTTP/1.1\nHost: x\n\n", [400], 0),
    ("bare-lf-header", b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", [400], 0),
    ("bare-cr", b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", [400], 0),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", [400], 0),
    ("cr-in-value", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", [400], 0),
    ("nul-in-host", b"GET / HTTP/1.1\r\nHost: local\x00host\r\n\r\n", [400], 0),
    ("ctl-in-value", b"GET / HTTP/1.1\r\nHost: x\r\nX: \x1b[31m\r\n\r\n", [400], 0),
    ("no-colon", b"GET / HTTP/1.1\r\nHost: x\r\nJunk\r\n\r\n", [400], 0),
    ("non-ascii-name", b"GET / HTTP/1.1\r\nHost: x\r\nX\xc3\xa9: v\r\n\r\n", [400], 0),
    # Host rules
    ("host-missing", b"GET / HTTP/1.1\r\n\r\n", [400], 0),
    ("host-duplicate", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", [400], 0),
    ("host-invalid", b"GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n", [400], 0),
    # request line
    ("version-2", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", [505], 0),
    ("version-12", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", [505], 0),
    ("version-lowercase", b"GET / http/1.1\r\nHost: x\r\n\r\n", [400], 0),
    ("http09", b"GET /\r\n\r\n", [400], 0),
    ("double-space", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", [400], 0),
    ("leading-crlf", b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", [400], 0),
    ("non-ascii-target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", [400], 0),
    ("fragment", b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", [400], 0),
    ("relative-target", b"GET a HTTP/1.1\r\nHost: x\r\n\r\n", [400], 0),
    ("absolute-no-authority", b"GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n", [400], 0),
    ("absolute-userinfo", b"GET http://u@evil/a HTTP/1.1\r\nHost: x\r\n\r\n", [400], 0),
    ("connect", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", [405], 0),
    ("tls-on-plain-port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, [400], 0),
    # limits (defaults: request line 8190, 100 fields, 8190 per field, 417792 head)
    ("request-line-too-long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", [414], 0),
    ("too-many-fields", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n",
     [431], 0),
    ("field-too-large", b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 9000 + b"\r\n\r\n", [431], 0),
    ("head-too-large", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 8000)
                                                                 for i in range(60)) + b"\r\n", [431], 0),
    # chunked body framing: detected after dispatch, so the carrier reaches the app (which sees a
    # disconnect); the client gets 400 and nothing behind the bad chunk is ever parsed
    ("chunk-missing-crlf", CHUNKED + b"5\r\nhello0\r\n\r\n" + SMUGGLED, [400], 1),
    ("chunk-lf-only", CHUNKED + b"5\r\nhello\n0\r\n\r\n" + SMUGGLED, [400], 1),
    ("chunk-size-invalid", CHUNKED + b"5x\r\nhello\r\n0\r\n\r\n" + SMUGGLED, [400], 1),
    ("chunk-size-negative", CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n", [400], 1),
    ("chunk-size-too-many-digits", CHUNKED + b"00000000000000005\r\nhello\r\n0\r\n\r\n", [400], 1),
    ("chunk-data-too-long", CHUNKED + b"3\r\nhello\r\n0\r\n\r\n" + SMUGGLED, [400], 1),
    ("chunk-ext-ctl", CHUNKED + b"5;a=\x01\r\nhello\r\n0\r\n\r\n", [400], 1),
    ("chunk-ext-bare-cr", CHUNKED + b"5;a=b\rc\r\nhello\r\n0\r\n\r\n" + SMUGGLED, [400], 1),
    ("chunk-size-overflow", CHUNKED + b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n" + SMUGGLED, [400], 1),
    ("chunk-bad-trailer", CHUNKED + b"0\r\nBad Trailer\r\n\r\n" + SMUGGLED, [400], 1),
    ("chunk-last-missing-crlf", CHUNKED + b"0\r\n" + SMUGGLED, [400], 1),
    # pipelined: a valid request, then a bad one; a request hidden in a body stays body
    ("pipelined-then-bad", get("/p1") + b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
     [200, 400], 1),
    ("hidden-in-length-body", post(b"Content-Length: %d" % (len(SMUGGLED) + 1), body=b"x" + SMUGGLED)
     + b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, x\r\n\r\n", [200, 400], 1),
    ("hidden-in-chunked-body", CHUNKED + b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
     + b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", [200, 400], 1),
]


# The differential verdict: every case is also refused by h11 (the reference parser), at the same request,
# unless h11 accepts it and the case is one of the documented deviations where we are stricter
# (protocol/http11.py STRICTER_THAN_H11, docs/http1.md).
H11_ACCEPTS = {
    "cl-te": "cl-and-te", "te-cl": "cl-and-te", "te-folded": "obs-fold", "te-http10": "te-http10",
    "cl-dup-equal": "cl-repeated", "cl-list": "cl-repeated", "cl-huge": "cl-too-long", "obs-fold": "obs-fold",
    "bare-lf": "bare-lf", "bare-lf-header": "bare-lf", "ctl-in-value": "ctl-in-value", "host-invalid": "host-value",
    "version-2": "http-version", "version-12": "http-version", "fragment": "target-form",
    "relative-target": "target-form", "absolute-no-authority": "target-form", "connect": "connect",
    "request-line-too-long": "limits", "too-many-fields": "limits", "field-too-large": "limits",
    "head-too-large": "limits", "chunk-size-too-many-digits": "chunk-size-digits", "chunk-ext-ctl": "chunk-ext",
    "pipelined-then-bad": "cl-repeated", "hidden-in-chunked-body": "target-form", "absolute-userinfo": "target-form",
    "chunk-ext-bare-cr": "chunk-ext", "chunk-size-overflow": "chunk-size-digits",
}


@pytest.mark.parametrize("name,data,statuses,reach", CASES, ids=[c[0] for c in CASES])
def test_h11_verdict_agrees_or_the_deviation_is_documented(name: str, data: bytes, statuses: list[int],
                                                           reach: int) -> None:
    from django_granian.protocol.http11 import STRICTER_THAN_H11

    from .test_http11_differential import reference

    requests, state = reference([data])[:2]
    if name in H11_ACCEPTS:
        assert H11_ACCEPTS[name] in STRICTER_THAN_H11
        assert state != "error" or len(requests) > len(statuses) - 1, f"{name}: h11 refuses it too; drop it here"
    else:
        assert state == "error" and len(requests) == len(statuses) - 1, f"{name}: h11 says {state} {requests}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("smuggling")
    with start_server(["--interface", "asgi", "core_apps:app", "--http", "1", "--log-level", "warning"],
                      tmp_path=tmp) as srv:
        yield srv


def app_count(port: int) -> int:
    with Conn(port) as c:
        return int(c.request(get("/__count")).body)


def test_cases_are_named_uniquely() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 60


@pytest.mark.parametrize("name,data,statuses,reach", CASES, ids=[c[0] for c in CASES])
def test_rejected_and_never_reaches_the_app(server: ServerProcess, name: str, data: bytes, statuses: list[int],
                                            reach: int) -> None:
    before = app_count(server.port)
    with Conn(server.port) as conn:
        conn.send(data)
        got = []
        for _ in statuses:
            resp = conn.read_response()
            got.append(resp.status)
        assert got == statuses, f"{name}: {got}"
        last = resp
        assert last.header("connection") == b"close"
        assert conn.is_closed(), f"{name}: connection left open"
        assert b"HTTP/1.1" not in conn.buf, f"{name}: extra response after the rejection: {conn.buf!r}"
    assert app_count(server.port) - before == reach, f"{name}: the application saw the bad request"


def test_large_refused_body_response_is_readable(server: ServerProcess) -> None:
    """A client still sending a refused body reads the error, not a connection reset (lingering close)."""
    with Conn(server.port) as conn:
        conn.send(post(b"Content-Length: 5", b"Content-Length: 5"))
        conn.send(b"x" * 200_000)  # more than the socket buffers hold unread
        resp = conn.read_response()
        assert resp.status == 400
        assert conn.is_closed()
