"""Hypothesis fuzzers for the sans-IO decoders: the HTTP/1.1 head parser and chunked decoder, the HTTP/2 frame
decoder (``H2ServerConnection.receive``) and its HPACK decoding. Arbitrary bytes, in arbitrary pieces, must
end in a result or the decoder's own error (``ProtocolError`` / ``H2ConnectionError``): never another
exception, and never a buffer that grows past the decoder's limits. (The differential fuzzers in
test_http11_differential.py and test_h2_differential.py check the *verdicts* against h11 and h2.)"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_granian.protocol.errors import ProtocolError
from django_granian.protocol.h2conn import PREFACE, H2ConnectionError, H2ServerConnection, frame
from django_granian.protocol.http11 import ChunkedDecoder, Limits, parse_head

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = Limits(max_head=2048, max_line=512, max_fields=20, max_field_size=256, max_body=0)


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


SEEDS = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /a?b HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
         b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"]
heads = st.one_of(st.binary(max_size=3000),
                  st.builds(lambda seed, junk, at: seed[:at] + junk + seed[at:], st.sampled_from(SEEDS),
                            st.binary(max_size=64), st.integers(0, 80)))


@FUZZ
@given(heads, st.lists(st.integers(0, 4000), max_size=8))
def test_head_parser_never_crashes_and_bounds_its_buffer(data: bytes, cuts: list[int]) -> None:
    buf, scan = b"", 0
    for piece in pieces(data, cuts):
        buf += piece
        try:
            result = parse_head(buf, LIMITS, scan)
        except ProtocolError as exc:
            assert exc.status in (400, 405, 413, 414, 431, 501, 505)
            return
        if result is not None:
            head, used = result
            assert 0 < used <= len(buf) and head.method
            return
        scan = len(buf)
        assert len(buf) <= LIMITS.max_head  # an incomplete head beyond the limit is refused (431), not kept


@FUZZ
@given(st.one_of(st.binary(max_size=6000),
                 st.builds(lambda n, junk: b"%x\r\n" % n + b"z" * min(n, 3000) + junk, st.integers(0, 10**6),
                           st.binary(max_size=32))),
       st.lists(st.integers(0, 7000), max_size=8))
def test_chunked_decoder_never_crashes_and_bounds_its_buffer(data: bytes, cuts: list[int]) -> None:
    decoder = ChunkedDecoder(LIMITS)
    for piece in pieces(data, cuts):
        try:
            decoder.feed(piece)
        except ProtocolError as exc:
            assert exc.status in (400, 431)
            return
        assert len(decoder._buf) <= 4096 + 2  # a chunk or trailer line longer than 4 KiB is refused
        if decoder.done:
            return


class Sink:
    """A handler that accepts whatever the connection reports (the asyncio side is not under test)."""

    def __getattr__(self, name: str):  # h2_request, h2_data, h2_reset, ... -> no-ops
        return lambda *args: None


def fresh() -> H2ServerConnection:
    conn = H2ServerConnection(Sink(), max_header_list_size=65536)
    conn.initiate()
    conn.receive(PREFACE + frame(4, 0, 0))  # the client preface and an empty SETTINGS
    conn.data_to_send()
    return conn


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """Random frames: random types (also unknown), flags, stream ids, lengths (also lying) and payloads."""
    out = b""
    for _ in range(draw(st.integers(1, 12))):
        payload = draw(st.binary(max_size=64))
        length = draw(st.one_of(st.just(len(payload)), st.integers(0, 1 << 24)))
        out += struct.pack(">L", length)[1:] + bytes([draw(st.integers(0, 12)), draw(st.integers(0, 255))])
        out += struct.pack(">L", draw(st.sampled_from([0, 1, 2, 3, 5, 2**31 - 1, 2**32 - 1]))) + payload
    return out


@FUZZ
@given(st.one_of(frames(), st.binary(max_size=2000)), st.lists(st.integers(0, 3000), max_size=8))
def test_frame_decoder_never_crashes_and_bounds_its_buffers(data: bytes, cuts: list[int]) -> None:
    conn = fresh()
    for piece in pieces(data, cuts):
        try:
            conn.receive(piece)
        except H2ConnectionError:
            return
        conn.data_to_send()
        # a partial frame is kept only up to one frame (an oversized one is refused from its 9-byte header),
        # a header block in progress only up to the header list limit
        assert len(conn.buf) <= 9 + conn.recv_max_frame
        assert conn.hb_size <= conn.max_header_list_size + 65536


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_hpack_decoding_of_any_block_is_a_result_or_a_connection_error(block: bytes, end: bool) -> None:
    conn = fresh()
    headers = frame(1, 0x4 | (0x1 if end else 0), 1, block)  # HEADERS, END_HEADERS, stream 1
    try:
        conn.receive(headers + frame(1, 0x5, 3, block))  # the same block again on stream 3
    except H2ConnectionError as exc:
        assert exc.code in (0x1, 0x9, 0xB)  # PROTOCOL_ERROR, COMPRESSION_ERROR, ENHANCE_YOUR_CALM
