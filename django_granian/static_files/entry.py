"""One static file as precomputed responses (whitenoise's ``StaticFile`` idea, HTTP-neutral).

A :class:`StaticFile` holds one :class:`Variant` per representation on disk: the file itself and
the ``.br``/``.gz`` siblings that whitenoise's ``CompressedManifestStaticFilesStorage`` (or any
pre-compressor) wrote next to it. Each variant carries its ready-made 200 and 304 header lists and,
for small files, the bytes themselves. ``stamp`` (inode, size, mtime of every variant) tells the
engine when the file changed on disk.
"""

from __future__ import annotations

import os
import re
import stat
from email.utils import formatdate
from typing import Callable, Sequence

from whitenoise.media_types import MediaTypes

ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
FOREVER = 315360000  # whitenoise's "cache forever" (10 years)
IMMUTABLE_CACHE = b"max-age=%d, public, immutable" % FOREVER
# Django's ManifestStaticFilesStorage names: "app.3f2a1b9c8d7e.css" (12 hex digits of md5), also
# when the compressed sibling is requested directly ("app.3f2a1b9c8d7e.css.gz").
_HASHED = re.compile(r"^.+\.[0-9a-f]{12}\.[^./]+(\.(gz|br))?$")
_media_types = MediaTypes()

ImmutableTest = Callable[[str, str], bool]  # (file path, url) -> bool, as whitenoise's option


def hashed_name_test(path: str, url: str) -> bool:
    """whitenoise's rule for manifest-hashed (hence immutable) files, without needing the manifest."""
    return _HASHED.match(url.rsplit("/", 1)[-1]) is not None


def content_type(path: str, charset: str = "utf-8") -> bytes:
    """whitenoise's media types; text types get a charset (as whitenoise does)."""
    media_type = _media_types.get_type(path)
    if media_type.startswith("text/"):
        media_type += "; charset=" + charset
    return media_type.encode("latin-1")


Stamp = tuple[tuple[int, int, int] | None, ...]


def stamp_of(path: str, siblings: bool = True) -> Stamp:
    """(inode, size, mtime_ns) of the file and of each compressed sibling (None when absent, or when
    ``siblings`` is off: user-uploaded media never has its ``name.gz`` served as ``name``)."""
    out: list[tuple[int, int, int] | None] = []
    for suffix in ("", ".br", ".gz") if siblings else ("",):
        try:
            st = os.stat(path + suffix)
        except (OSError, ValueError):
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns) if stat.S_ISREG(st.st_mode) else None)
    if not siblings:
        out += [None, None]
    return tuple(out)


class Variant:
    __slots__ = ("encoding", "path", "size", "etag", "headers", "not_modified", "body")

    def __init__(self, encoding: str | None, path: str, size: int, etag: bytes, headers: list,
                 not_modified: list) -> None:
        self.encoding = encoding
        self.path = path
        self.size = size
        self.etag = etag
        self.headers = headers  # 200 response (with content-length)
        self.not_modified = not_modified  # 304 response
        self.body: bytes | None = None  # cached contents (small files, loaded on first use)


class StaticFile:
    __slots__ = ("key", "path", "url", "stamp", "checked", "identity", "alternatives", "mtime",
                 "last_modified")

    def __init__(self, key: bytes, path: str, url: str, stamp: Stamp, identity: Variant,
                 alternatives: list[Variant], mtime: int, last_modified: bytes, checked: float) -> None:
        self.key = key
        self.path = path
        self.url = url
        self.stamp = stamp
        self.checked = checked
        self.identity = identity
        self.alternatives = alternatives  # compressed variants, smallest first
        self.mtime = mtime
        self.last_modified = last_modified


class Redirect:
    """A directory requested without its trailing slash (served as ``dir/`` + the index file)."""

    __slots__ = ("key", "location")

    def __init__(self, key: bytes, location: bytes) -> None:
        self.key = key
        self.location = location


def build_static_file(key: bytes, path: str, url: str, *, expires: int, immutable: ImmutableTest,
                      charset: str, now: float, stamp: Stamp | None = None, siblings: bool = True,
                      extra: Sequence[tuple[bytes, bytes]] = (),
                      attachment: Callable[[bytes], bool] | None = None) -> StaticFile | None:
    """Precompute every response of ``path`` (None if it is not a regular file). ``extra`` headers
    go on every response; types for which ``attachment(content_type)`` is true get
    ``Content-Disposition: attachment`` (media: a browser must not render them on the site's origin)."""
    if stamp is None:
        stamp = stamp_of(path, siblings)
    main = stamp[0]
    if main is None:
        return None
    _ino, size, mtime_ns = main
    mtime = mtime_ns // 1_000_000_000
    last_modified = formatdate(mtime, usegmt=True).encode("ascii") if mtime > 0 else b""
    ctype = content_type(path, charset)
    base: list[tuple[bytes, bytes]] = [(b"content-type", ctype), *extra]
    if attachment is not None and attachment(ctype):
        base.append((b"content-disposition", b"attachment"))
    if last_modified:
        base.append((b"last-modified", last_modified))
    if immutable(path, url):
        cache: bytes | None = IMMUTABLE_CACHE
    elif expires > 0:
        cache = b"max-age=%d" % expires
    else:
        cache = None
    if cache is not None:
        base.append((b"cache-control", cache))
    has_alternatives = any(s is not None for s in stamp[1:])
    if has_alternatives:
        base.append((b"vary", b"Accept-Encoding"))
    base.append((b"accept-ranges", b"bytes"))

    def variant(encoding: str | None, file_path: str, info: tuple[int, int, int]) -> Variant:
        vsize, vmtime = info[1], info[2]
        tag = b'"%x-%x%s"' % (vmtime, vsize, b"-" + encoding.encode() if encoding else b"")
        headers = [*base, (b"etag", tag), (b"content-length", b"%d" % vsize)]
        if encoding:
            headers.append((b"content-encoding", encoding.encode()))
        not_modified = [(b"etag", tag)] + [(n, v) for n, v in base if n in (b"cache-control", b"vary",
                                                                              b"last-modified")]
        return Variant(encoding, file_path, vsize, tag, headers, not_modified)

    identity = variant(None, path, main)
    alternatives = [variant(enc, path + suffix, info) for (enc, suffix), info in zip(ENCODINGS, stamp[1:], strict=True)
                    if info is not None]
    alternatives.sort(key=lambda v: v.size)
    return StaticFile(key, path, url, stamp, identity, alternatives, mtime, last_modified, now)
