"""Response compression, sans-IO: Accept-Encoding negotiation, the compress-or-not rules and header
rewriting (tables), and the encoders (whole bodies and flushed streams, decoded by the libraries
themselves, not by our code)."""

from __future__ import annotations

import zlib

import brotli
import pytest
import zstandard

from django_granian.compression.codecs import Brotli, Gzip, Zstd
from django_granian.compression.negotiate import accept_encoding, choose_coding
from django_granian.compression.policy import Compression, TypeMatcher, compressed_headers
from django_granian.config import COMPRESS_TYPES, Config, ConfigError

OFFERED = ("zstd", "br", "gzip")


@pytest.mark.parametrize(("header", "expected"), [
    (None, None),
    (b"", None),
    (b"gzip", "gzip"),
    (b"gzip, br", "br"),                             # a tie: the server's order (zstd is not accepted)
    (b"gzip, deflate, br, zstd", "zstd"),            # what current browsers send
    (b"br;q=0.5, gzip", "gzip"),                     # the client's q wins over the server's order
    (b"zstd;q=0.1, br;q=0.1, gzip;q=0.1", "zstd"),
    (b"gzip;q=0.001", "gzip"),                       # any q > 0 beats the implicit identity
    (b"*", "zstd"),
    (b"*;q=0", None),
    (b"*;q=0.5, zstd;q=0", "br"),                    # * covers what is not listed, q=0 refuses zstd
    (b"gzip;q=0", None),
    (b"gzip;q=0.0, br;q=0.000", None),
    (b"identity", None),
    (b"identity;q=1, gzip;q=0.5", None),             # identity preferred by q: not compressed
    (b"gzip;q=0.5, identity;q=0.1", "gzip"),
    (b"identity;q=0", None),                         # nothing else acceptable: identity anyway
    (b"compress, deflate, foo, exi", None),          # unknown or unsupported codings
    (b"x-gzip", "gzip"),                             # RFC 9110 alias
    (b"GZIP ; Q=0.9", "gzip"),                       # case and spaces
    (b"gzip;q=abc", None),                           # malformed q: refused, not taken as 1
    (b"gzip;q=1.5", None),
    (b"gzip;q=-1", None),
    (b"gzip;q=nan", None),
    (b"gzip;q=inf", None),
    (b"gzip;q=", None),
    (b",,, ;q=1, gzip", "gzip"),                     # empty elements skipped
    (b"gzip;level=1;q=0.8", "gzip"),                 # other parameters ignored
    (b"\xff\xfe, gzip", "gzip"),                     # non-ASCII junk is an unknown coding
    (b"br, br;q=0", None),                           # listed twice: the last one counts
])
def test_choose_coding(header: bytes | None, expected: str | None) -> None:
    assert choose_coding(header, OFFERED) == expected


def test_choose_coding_only_offers_what_is_configured() -> None:
    assert choose_coding(b"zstd, br", ("gzip",)) is None
    assert choose_coding(b"zstd, gzip", ("gzip", "zstd")) == "gzip"  # the configured order breaks ties


def test_accept_encoding_parses_each_coding() -> None:
    assert accept_encoding(b"gzip;q=0.5, BR, *;q=0") == {"gzip": 0.5, "br": 1.0, "*": 0.0}


@pytest.mark.parametrize(("content_type", "expected"), [
    (b"text/html; charset=utf-8", True),
    (b"TEXT/CSS", True),
    (b"text/event-stream", True),
    (b"application/json", True),
    (b"application/problem+json", True),
    (b"application/ld+json; charset=utf-8", True),
    (b"application/rss+xml", True),
    (b"image/svg+xml", True),
    (b"application/javascript", True),
    (b"image/png", False),
    (b"application/octet-stream", False),
    (b"application/zip", False),
    (b"font/woff2", False),
    (b"video/mp4", False),
    (b"", False),
    (b"json", False),
])
def test_default_compressible_types(content_type: bytes, expected: bool) -> None:
    assert TypeMatcher(COMPRESS_TYPES)(content_type) is expected


@pytest.mark.parametrize("pattern", ["text", "*/json", "text/ht*ml", "/json", "text/"])
def test_bad_type_patterns(pattern: str) -> None:
    with pytest.raises(ValueError):
        TypeMatcher([pattern])
    with pytest.raises(ConfigError, match="compress-types"):
        Config(compress_types=[pattern]).validate()


HTML = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"20000")]
POLICY = Compression([Zstd(3), Brotli(4), Gzip(6)], COMPRESS_TYPES, min_size=512)
VARY = (b"vary", b"Accept-Encoding")


@pytest.mark.parametrize(("status", "headers", "head_only", "accept", "expected", "vary"), [
    (200, HTML, False, b"gzip", "gzip", [b"Accept-Encoding"]),
    (200, HTML, False, b"br, zstd", "zstd", [b"Accept-Encoding"]),
    (404, HTML, False, b"gzip", "gzip", [b"Accept-Encoding"]),            # error pages too
    (200, HTML, False, None, "vary", [b"Accept-Encoding"]),               # no Accept-Encoding: identity + Vary
    (200, HTML, False, b"identity", "vary", [b"Accept-Encoding"]),
    (200, HTML, True, b"gzip", "vary", [b"Accept-Encoding"]),             # HEAD
    (200, [*HTML, (b"Set-Cookie", b"sessionid=1")], False, b"gzip", "vary", [b"Accept-Encoding"]),  # BREACH
    (200, [(b"content-type", b"text/html"), (b"content-length", b"511")], False, b"gzip", "vary",
     [b"Accept-Encoding"]),                                               # below the minimum size
    (200, [(b"content-type", b"text/html"), (b"content-length", b"512")], False, b"gzip", "gzip",
     [b"Accept-Encoding"]),
    (200, [(b"content-type", b"text/html")], False, b"gzip", "gzip", [b"Accept-Encoding"]),  # streamed
    (200, [*HTML, (b"Vary", b"Cookie")], False, b"gzip", "gzip", [b"Cookie, Accept-Encoding"]),
    (200, [*HTML, (b"vary", b"accept-encoding")], False, b"gzip", "gzip", [b"accept-encoding"]),
    (200, [*HTML, (b"vary", b"*")], False, b"gzip", "gzip", [b"*"]),
    (200, [*HTML, (b"Content-Encoding", b"gzip")], False, b"gzip", None, []),   # compressed by the app
    (200, [*HTML, (b"content-encoding", b"identity")], False, b"gzip", None, []),
    (200, [*HTML, (b"cache-control", b"public, No-Transform")], False, b"gzip", None, []),
    (206, [*HTML, (b"content-range", b"bytes 0-9/100")], False, b"gzip", None, []),
    (304, HTML, False, b"gzip", None, []),
    (204, HTML, False, b"gzip", None, []),
    (101, HTML, False, b"gzip", None, []),
    (200, [(b"content-type", b"image/png")], False, b"gzip", None, []),
    (200, [(b"content-length", b"20000")], False, b"gzip", None, []),         # no Content-Type
])
def test_plan(status: int, headers: list, head_only: bool, accept: bytes | None, expected: str | None,
              vary: list[bytes]) -> None:
    plan = POLICY.plan(accept, head_only, status, headers)
    if expected is None:
        assert plan is None
        return
    assert plan is not None
    assert (plan.codec.name if plan.codec else "vary") == expected
    assert [v for n, v in plan.headers if n.lower() == b"vary"] == vary
    assert not any(n.lower() == b"content-encoding" for n, _ in plan.headers)  # the uncompressed head


def test_plan_with_cookies_opted_in() -> None:
    policy = Compression([Gzip(6)], COMPRESS_TYPES, with_cookies=True)
    plan = policy.plan(b"gzip", False, 200, [*HTML, (b"set-cookie", b"a=1")])
    assert plan is not None and plan.codec is not None and plan.codec.name == "gzip"


def test_compressed_headers() -> None:
    out = compressed_headers([(b"Content-Type", b"text/html"), (b"ETag", b'"abc"'), (b"Content-Length", b"10"),
                              (b"Accept-Ranges", b"bytes"), VARY, (b"x-other", b"1")], "br")
    assert out == [(b"Content-Type", b"text/html"), (b"ETag", b'W/"abc"'), VARY, (b"x-other", b"1"),
                   (b"content-encoding", b"br")]
    weak = compressed_headers([(b"etag", b'W/"abc"')], "gzip")
    assert weak == [(b"etag", b'W/"abc"'), (b"content-encoding", b"gzip")]


BODY = b"".join(b"<li>item %d: the quick brown fox</li>\n" % i for i in range(3000))


def _decoder(name: str):  # type: ignore[no-untyped-def]
    if name == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return d.decompress
    if name == "br":
        return brotli.Decompressor().process
    return zstandard.ZstdDecompressor().decompressobj().decompress


@pytest.mark.parametrize("codec", [Gzip(6), Brotli(4), Zstd(3), Gzip(1), Brotli(11), Zstd(19)],
                         ids=lambda c: f"{c.name}-{c.level}")
def test_whole_body_round_trip(codec) -> None:  # type: ignore[no-untyped-def]
    data = codec.compress(BODY)
    assert len(data) < len(BODY) / 5
    assert _decoder(codec.name)(data) == BODY


@pytest.mark.parametrize("codec", [Gzip(6), Brotli(4), Zstd(3)], ids=lambda c: c.name)
def test_stream_every_chunk_decodes_on_arrival(codec) -> None:  # type: ignore[no-untyped-def]
    """Each compressed chunk is flushed: a client decodes all of what was sent so far, so server-sent
    events arrive one by one."""
    stream = codec.stream()
    decode = _decoder(codec.name)
    events = [b"data: %d\n\n" % i for i in range(5)]
    for event in events:
        assert decode(stream.chunk(event)) == event
    assert stream.chunk(b"") == b""
    assert decode(stream.finish(b"data: end\n\n")) == b"data: end\n\n"


def test_gzip_uses_zlib_ng_when_installed_and_stays_compatible() -> None:
    """The [compress] extra brings zlib-ng: gzip goes through it (faster at the same level), and what
    it writes is a gzip member the stdlib (as every client) decodes, no larger than zlib's by more
    than a few per cent."""
    from django_granian.compression import codecs

    zlib_ng = pytest.importorskip("zlib_ng.zlib_ng")
    assert codecs.deflate is zlib_ng
    data = Gzip(6).compress(BODY)
    assert zlib.decompress(data, 16 + zlib.MAX_WBITS) == BODY
    reference = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    assert len(data) <= 1.05 * len(reference.compress(BODY) + reference.flush())
