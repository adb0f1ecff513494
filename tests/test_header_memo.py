"""The response-header memos of the hot path (protocol/h1response.py header_block, app/encoding.py): the same
answer as computing afresh, one entry per repeated header set, bounded in entries and in bytes."""

from __future__ import annotations

import pytest

from django_granian.app import encoding
from django_granian.protocol import h1response
from django_granian.protocol.fields import ResponseHeaderError
from django_granian.server import h1


class Transport:
    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)


class State:
    date = b"date: Sat, 21 Nov 2026 00:00:00 GMT\r\n"
    server_header = True
    shutting_down = False
    default_headers = date + b"server: django-granian\r\n"


def channel() -> h1.HTTP1Protocol:
    conn = h1.HTTP1Protocol.__new__(h1.HTTP1Protocol)
    conn.transport = Transport()
    conn.server = State()  # type: ignore[assignment]
    conn.keep_alive = True
    conn.head_only = conn.http10 = conn.resp_chunked = conn.discarding = False
    conn.body_mode = 0
    return conn


def test_header_blocks_are_remembered_per_set_and_bounded() -> None:
    h1response.BLOCKS.clear()
    headers = ((b"content-type", b"text/plain"), (b"content-length", b"2"))
    first, again = channel(), channel()
    first.send_head(200, headers, b"ok", True)
    again.send_head(200, list(headers), b"ok", True)  # a list with the same pairs finds the same entry
    assert first.transport.out == again.transport.out == [  # type: ignore[attr-defined]
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n" + State.default_headers
        + b"\r\nok"]
    assert list(h1response.BLOCKS) == [headers]
    big = ((b"content-security-policy", b"x" * 5000),)
    channel().send_head(200, big, b"", True)
    assert big not in h1response.BLOCKS  # over BLOCK_MAX_BYTES: computed every time, never remembered
    for i in range(h1response.BLOCKS_MAX + 5):
        channel().send_head(200, ((b"x-n", b"%d" % i),), b"", True)
        assert len(h1response.BLOCKS) <= h1response.BLOCKS_MAX
    with pytest.raises(ResponseHeaderError):  # a rejected set is rejected every time, never remembered
        channel().send_head(200, ((b"x-bad", b"a\r\nb"),), b"", True)
    assert ((b"x-bad", b"a\r\nb"),) not in h1response.BLOCKS


def test_str_header_encoding_is_remembered_and_bounded() -> None:
    encoding._ENCODED.clear()
    headers = [("Content-Type", "text/plain"), ("Content-Length", "13")]
    encoded, length = encoding.encode_headers(headers)
    assert encoded == ((b"Content-Type", b"text/plain"), (b"Content-Length", b"13")) and length == 13
    assert encoding.encode_headers(list(headers))[0] is encoded  # the same tuple object: h1 finds it by identity
    assert encoding.encode_headers([("X-Big", "v" * 5000)])[1] == -1
    assert len(encoding._ENCODED) == 1  # the big set was not remembered
    for bad in ([("Caf\u00e9\u2603", "x")], [(b"bytes", "x")], [("a", 1)]):
        with pytest.raises(TypeError):
            encoding.encode_headers(bad)
