"""Content-coding encoders: gzip (``zlib-ng``, else the stdlib's ``zlib``), br (``brotli``) and zstd
(``zstandard``).

Each codec compresses a whole body at once (``compress``) or a stream chunk by chunk
(``stream()``): every chunk is flushed to a byte boundary so a client can decode it as soon as it
arrives (server-sent events stay event by event), and ``finish`` ends the stream. ``brotli`` and
``zstandard`` are optional (``pip install django-granian[compress]``): :func:`available` says which
codings can be offered. gzip uses ``zlib-ng`` (same extra) when it is installed: the same deflate
format, at level 6 in 35-60% of zlib's time and no larger output on testproject's bodies
(docs/benchmarks/compression.md); without it, the stdlib's zlib.
"""

from __future__ import annotations

import importlib
import zlib
from typing import Any, Callable

try:  # zlib-ng: the same API and format, faster
    deflate: Any = importlib.import_module("zlib_ng.zlib_ng")
except ImportError:  # pragma: no cover - the [compress] extra brings it
    deflate = zlib

GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip member (header + deflate + trailer)
ZSTD_MAX_LEVEL = 19  # RFC 9659: zstd as a content coding may not need a window over 8 MB (levels 20+ do)


class StreamEncoder:
    """One response body being compressed as it is produced."""

    __slots__ = ("_chunk", "_finish")

    def __init__(self, chunk: Callable[[bytes], bytes], finish: Callable[[], bytes]) -> None:
        self._chunk = chunk
        self._finish = finish

    def chunk(self, data: bytes) -> bytes:
        """Compressed bytes for ``data``, flushed so that the client can decode all of it now."""
        return self._chunk(data) if data else b""

    def finish(self, data: bytes = b"") -> bytes:
        """The compressed rest of the body: ``data`` and the end of the stream."""
        return (self._chunk(data) if data else b"") + self._finish()


class Codec:
    """A content coding at a fixed level: ``name`` is its ``Content-Encoding`` token."""

    name = ""
    level = 0

    def compress(self, data: bytes) -> bytes:
        raise NotImplementedError

    def stream(self) -> StreamEncoder:
        raise NotImplementedError


class Gzip(Codec):
    name = "gzip"

    def __init__(self, level: int = 6) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        c = deflate.compressobj(self.level, deflate.DEFLATED, GZIP_WBITS)
        return c.compress(data) + c.flush()  # type: ignore[no-any-return]

    def stream(self) -> StreamEncoder:
        c = deflate.compressobj(self.level, deflate.DEFLATED, GZIP_WBITS)
        return StreamEncoder(lambda data: c.compress(data) + c.flush(deflate.Z_SYNC_FLUSH), c.flush)


class Brotli(Codec):
    name = "br"

    def __init__(self, level: int = 4) -> None:
        import brotli

        self._brotli: Any = brotli
        self.level = level

    def compress(self, data: bytes) -> bytes:
        return self._brotli.compress(data, quality=self.level)  # type: ignore[no-any-return]

    def stream(self) -> StreamEncoder:
        c = self._brotli.Compressor(quality=self.level)
        return StreamEncoder(lambda data: c.process(data) + c.flush(), c.finish)


class Zstd(Codec):
    name = "zstd"

    def __init__(self, level: int = 3) -> None:
        import zstandard

        self._zstd: Any = zstandard
        self.level = min(level, ZSTD_MAX_LEVEL)
        # one context for whole bodies (the event loop is the only user); a stream needs its own
        self._oneshot = zstandard.ZstdCompressor(level=self.level)

    def compress(self, data: bytes) -> bytes:
        return self._oneshot.compress(data)  # type: ignore[no-any-return]

    def stream(self) -> StreamEncoder:
        zstd = self._zstd
        c = zstd.ZstdCompressor(level=self.level).compressobj()
        block = zstd.COMPRESSOBJ_FLUSH_BLOCK
        return StreamEncoder(lambda data: c.compress(data) + c.flush(block), c.flush)


CODECS: dict[str, Callable[[int], Codec]] = {"zstd": Zstd, "br": Brotli, "gzip": Gzip}
MODULES = {"zstd": "zstandard", "br": "brotli", "gzip": "zlib"}


def available(name: str) -> bool:
    """Whether coding ``name`` can be used here (its package is installed)."""
    import importlib.util

    module = MODULES.get(name)
    return module is not None and importlib.util.find_spec(module) is not None


def decompress(name: str, data: bytes) -> bytes:
    """Decode a whole body (tests and tools; the server never decompresses)."""
    if name == "gzip":
        return zlib.decompress(data, GZIP_WBITS)
    if name == "br":
        import brotli

        return brotli.decompress(data)  # type: ignore[no-any-return]
    if name == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)  # type: ignore[no-any-return]
    raise ValueError(f"unknown content coding {name!r}")
