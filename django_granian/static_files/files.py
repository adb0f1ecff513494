"""The static file engine: whitenoise's semantics, served by the server before the app.

``StaticFiles(mounts, ...)`` scans every ``(route, directory)`` mount once at start into
precomputed :class:`~.entry.StaticFile` responses keyed by canonical URL path, so a hit costs one
dict lookup, a scan of the request headers and one write. Misses under a route are resolved on disk
(files added after start are found) through :mod:`.paths`, which keeps every lookup inside its
mount. Every file is re-``stat``-ed at most once a second when requested, so a file changed on disk
gets a new ETag (and new cached bytes).

Responses: 200 / HEAD with Content-Type (charset for text), Content-Length, Last-Modified, ETag,
Cache-Control, Accept-Ranges, ``Vary: Accept-Encoding`` and the ``.br``/``.gz`` sibling chosen by
Accept-Encoding q-values; 304 on If-None-Match / If-Modified-Since; 206 / 416 for one byte range
(honouring If-Range; several ranges are ignored -> 200); 405 with ``Allow: GET, HEAD`` for other
methods on a file; 404 for anything else under a route (or the app, with ``fallthrough=True``);
302 from ``dir`` to ``dir/`` when the directory has the index file. Small files are answered from
memory with one write; larger ones are opened here and handed to the channel's ``respond_fd``,
which streams them (zero-copy ``os.sendfile`` on plain-TCP HTTP/1.1). Every response goes through
the channel (``respond``/``respond_fd``, see ``server/channel.py``), so static hits are in the access
log and metrics like any other; this package imports nothing from the server or the app layer.
"""

from __future__ import annotations

import os
import stat
import time
from typing import Any, Callable, Iterable

from .entry import ImmutableTest, Redirect, StaticFile, Variant, build_static_file, hashed_name_test, stamp_of
from .headers import UNSATISFIABLE, accept_encoding, coding_quality, etag_matches, http_date, parse_range
from .paths import inside, split_request_path, url_for

MAX_ENTRIES = 200_000  # files known by URL (scanned or found later); beyond that: resolved per request
CACHE_FILE_MAX = 256 * 1024  # files up to this size are kept in memory ...
CACHE_TOTAL = 64 * 1024 * 1024  # ... up to this many bytes per worker
RECHECK = 1.0  # seconds between two stats of the same file

_NOT_FOUND = [(b"content-type", b"text/plain; charset=utf-8")]
_NOT_ALLOWED = [(b"allow", b"GET, HEAD"), (b"content-type", b"text/plain; charset=utf-8")]
_INTERESTING = frozenset({b"accept-encoding", b"if-none-match", b"if-modified-since", b"range", b"if-range"})


class Mount:
    __slots__ = ("route", "root", "real")

    def __init__(self, route: str, directory: str) -> None:
        self.route = route.rstrip("/").encode("utf-8")  # "/" -> b""
        self.root = os.path.abspath(directory)
        self.real = os.path.realpath(directory)


class StaticFiles:
    """Serve ``mounts`` (``[(route, directory), ...]``) the way whitenoise would, before the app.

    ``expires``: Cache-Control max-age in seconds (0: no Cache-Control) for files that are not
    ``immutable``; ``immutable(path, url)`` (default: Django's manifest-hashed names) gets
    ``max-age=315360000, public, immutable``; ``index_file`` is served for ``dir/``;
    ``follow_symlinks`` allows symlinks that leave the mount; ``fallthrough`` hands misses to the
    app instead of answering 404 (Django's runserver-style finders). For user-uploaded media (see
    :func:`media_files`): ``scan=False`` looks every file up on disk when first asked for,
    ``siblings=False`` never serves ``name.gz``/``name.br`` for ``name``, ``extra_headers`` go on
    every response and ``attachment(content_type)`` adds ``Content-Disposition: attachment``.
    """

    def __init__(self, mounts: Iterable[tuple[str, str]], *, expires: int = 86400, index_file: str | None = None,
                 follow_symlinks: bool = False, immutable: ImmutableTest | None = None,
                 fallthrough: bool = False, charset: str = "utf-8", cache_file_max: int = CACHE_FILE_MAX,
                 cache_total: int = CACHE_TOTAL, scan: bool = True, siblings: bool = True,
                 extra_headers: Iterable[tuple[bytes, bytes]] = (),
                 attachment: Callable[[bytes], bool] | None = None) -> None:
        self.mounts = sorted((Mount(r, d) for r, d in mounts), key=lambda m: len(m.route), reverse=True)
        self.prefixes = tuple(m.route for m in self.mounts)
        self.expires = expires
        self.index_file = index_file or None
        self.follow_symlinks = follow_symlinks
        self.immutable = immutable or hashed_name_test
        self.fallthrough = fallthrough
        self.charset = charset
        self.cache_file_max = cache_file_max
        self.cache_left = cache_total
        self.siblings = siblings
        self.extra_headers = tuple(extra_headers)
        self.attachment = attachment
        self.files: dict[bytes, StaticFile | Redirect] = {}
        if scan:
            for mount in self.mounts:
                self.scan(mount)

    @classmethod
    def from_config(cls, config: Any) -> StaticFiles:
        return cls(config.static_mounts, expires=config.static_path_expires,
                   index_file=config.static_path_dir_to_file,
                   follow_symlinks=config.static_path_follow_symlinks)

    def _build(self, key: bytes, path: str, now: float, stamp: Any = None, url: str | None = None
               ) -> StaticFile | None:
        return build_static_file(key, path, key.decode("ascii") if url is None else url, expires=self.expires,
                                 immutable=self.immutable, charset=self.charset, now=now, stamp=stamp,
                                 siblings=self.siblings, extra=self.extra_headers, attachment=self.attachment)

    # -- scanning -------------------------------------------------------------------------------------
    def scan(self, mount: Mount) -> int:
        """Precompute every file below ``mount`` (stops quietly at MAX_ENTRIES)."""
        count = 0
        now = time.monotonic()
        files = self.files
        for dirpath, dirnames, filenames in os.walk(mount.root, followlinks=self.follow_symlinks):
            dirnames.sort()
            rel = os.path.relpath(dirpath, mount.root)
            parts = [] if rel == "." else rel.split(os.sep)
            if not self.follow_symlinks and not inside(dirpath, mount.real):
                dirnames[:] = []
                continue
            if self.index_file and self.index_file in filenames:
                self._add_dir(mount, parts, os.path.join(dirpath, self.index_file), now)
            for name in filenames:
                if len(files) >= MAX_ENTRIES:
                    return count
                path = os.path.join(dirpath, name)
                if not self.follow_symlinks and os.path.islink(path) and not inside(path, mount.real):
                    continue
                key = url_for(mount.route, [*parts, name])
                entry = self._build(key, path, now)
                if entry is not None:
                    files[key] = entry
                    count += 1
        return count

    def _add_dir(self, mount: Mount, parts: list[str], index_path: str, now: float) -> StaticFile | None:
        if not self.follow_symlinks and not inside(index_path, mount.real):
            return None
        key = url_for(mount.route, parts)
        if parts:
            key += b"/"
        entry = self._build(key, index_path, now)
        if entry is not None and len(self.files) < MAX_ENTRIES:
            self.files[key] = entry
            bare = key[:-1]
            self.files[bare] = Redirect(bare, key)
        return entry

    # -- lookup ---------------------------------------------------------------------------------------
    def find(self, raw_path: bytes) -> StaticFile | Redirect | None | bool:  # noqa: C901
        """The entry for a request path: an entry, None (404 under a route) or False (not ours)."""
        entry = self.files.get(raw_path)
        if entry is not None:
            return entry
        for mount in self.mounts:
            route = mount.route
            if raw_path.startswith(route) and (len(raw_path) == len(route) or raw_path[len(route)] == 0x2F):
                break
        else:
            return False
        split = split_request_path(raw_path[len(route):])
        if split is None:
            return None
        parts, trailing = split
        if not parts:
            key = route + b"/"
            if not trailing:  # the route itself: its index, if any
                entry = self.files.get(key) or self._resolve_dir(mount, parts, True)
                return Redirect(route, key) if isinstance(entry, StaticFile) else None
        else:
            key = url_for(route, parts) + (b"/" if trailing else b"")
        entry = self.files.get(key)
        if entry is not None:
            return entry
        path = os.path.join(mount.root, *parts)
        if not self.follow_symlinks and not inside(path, mount.real):
            return None
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        if stat.S_ISDIR(st.st_mode):
            found = self._resolve_dir(mount, parts, trailing)
            if found is not None and not trailing:
                return self.files.get(key) or Redirect(key, key + b"/")
            return found
        if trailing or not stat.S_ISREG(st.st_mode):
            return None
        entry = self._build(key, path, time.monotonic())
        if entry is not None and len(self.files) < MAX_ENTRIES:
            self.files[key] = entry
        return entry

    def lookup(self, raw_path: bytes) -> StaticFile | None:
        """The file at ``raw_path`` as it is now on disk (re-stat-ed at most once a second); None for a
        miss, a directory or a path the lookup rules refuse (X-Accel-Redirect targets)."""
        found = self.find(raw_path)
        if type(found) is not StaticFile:
            return None
        now = time.monotonic()
        if now - found.checked >= RECHECK:
            return self._refresh(found, now)
        return found

    def _resolve_dir(self, mount: Mount, parts: list[str], trailing: bool) -> StaticFile | None:
        if not self.index_file:
            return None
        index_path = os.path.join(mount.root, *parts, self.index_file)
        if not os.path.isfile(index_path):
            return None
        return self._add_dir(mount, parts, index_path, time.monotonic())

    def _refresh(self, entry: StaticFile, now: float) -> StaticFile | None:
        """Re-stat a file (at most once a second): a new entry if it changed, None if it is gone."""
        entry.checked = now
        current = stamp_of(entry.path, self.siblings)
        if current == entry.stamp:
            return entry
        files = self.files
        if files.get(entry.key) is entry:
            del files[entry.key]
        self._uncache(entry)
        if current[0] is None:
            return None
        if not self.follow_symlinks and not any(inside(entry.path, m.real) for m in self.mounts):
            return None
        fresh = self._build(entry.key, entry.path, now, current, entry.url)
        if fresh is not None:
            files[entry.key] = fresh
        return fresh

    def _uncache(self, entry: StaticFile) -> None:
        for variant in (entry.identity, *entry.alternatives):
            if variant.body is not None:
                self.cache_left += len(variant.body)
                variant.body = None

    def _load(self, variant: Variant) -> bytes | None:
        """The bytes of a small file (kept for later), None when it must be streamed."""
        if variant.size > self.cache_file_max or variant.size > self.cache_left:
            return None
        try:
            with open(variant.path, "rb") as fh:
                data = fh.read(variant.size + 1)
        except OSError:
            return None
        if len(data) != variant.size:
            return None  # changed under us: stream it (a short file aborts the connection)
        variant.body = data
        self.cache_left -= len(data)
        return data

    # -- serving --------------------------------------------------------------------------------------
    def serve(self, channel: Any, head: Any) -> bool:
        """Answer ``head`` if it is a static file request; False lets the app have it."""
        entry: Any = self.files.get(head.raw_path)
        if entry is None:
            if not head.raw_path.startswith(self.prefixes):
                return False
            found = self.find(head.raw_path)
            if found is False:
                return False
            if found is None:
                return self._missing(channel)
            entry = found
        if type(entry) is Redirect:
            location = entry.location + (b"?" + head.query if head.query else b"")
            channel.respond(302, [(b"location", location), (b"content-type", b"text/plain; charset=utf-8")],
                            b"Found\n")
            return True
        method = head.method
        if method != "GET" and method != "HEAD":
            channel.respond(405, _NOT_ALLOWED, b"Method Not Allowed\n")
            return True
        now = time.monotonic()
        if now - entry.checked >= RECHECK:
            refreshed = self._refresh(entry, now)
            if refreshed is None:
                return self._missing(channel)
            entry = refreshed
        self.respond(channel, head, entry)
        return True

    def _missing(self, channel: Any) -> bool:
        """A static path with no file: the app's turn with ``fallthrough=True``, else 404."""
        if self.fallthrough:
            return False
        channel.respond(404, _NOT_FOUND, b"Not Found\n")
        return True

    def respond(self, channel: Any, head: Any, entry: StaticFile, app_headers: list | None = None) -> None:
        """The response for a GET/HEAD of ``entry`` (conditional, range, encoding negotiation).
        ``app_headers``: the headers of the app response this file replaces (X-Accel-Redirect), merged
        in by :func:`with_app_headers`."""
        accept = if_none_match = if_modified_since = range_ = if_range = None
        interesting = _INTERESTING
        for name, value in head.headers:
            if name in interesting:
                if name == b"accept-encoding":
                    accept = value
                elif name == b"if-none-match":
                    if_none_match = value
                elif name == b"if-modified-since":
                    if_modified_since = value
                elif name == b"range":
                    range_ = value
                else:
                    if_range = value
        variant = entry.identity
        if accept is not None and entry.alternatives:
            variant = _choose(entry, accept)
        if if_none_match is not None:
            if etag_matches(if_none_match, variant.etag):
                channel.respond(304, _merge(variant.not_modified, app_headers, True), b"")
                return
        elif if_modified_since is not None and entry.last_modified:
            if if_modified_since == entry.last_modified:
                channel.respond(304, _merge(variant.not_modified, app_headers, True), b"")
                return
            since = http_date(if_modified_since)
            if since is not None and entry.mtime <= since:
                channel.respond(304, _merge(variant.not_modified, app_headers, True), b"")
                return
        head_only = head.method == "HEAD"
        if range_ is not None and (if_range is None or _if_range_ok(if_range, variant, entry)):
            span = parse_range(range_, variant.size)
            if span is UNSATISFIABLE:
                channel.respond(416, [(b"content-range", b"bytes */%d" % variant.size)], b"")
                return
            if span is not None:
                start, stop = span
                headers = [(n, v) for n, v in variant.headers if n != b"content-length"]
                headers.append((b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, variant.size)))
                headers.append((b"content-length", b"%d" % (stop - start)))
                self._send(channel, 206, _merge(headers, app_headers), variant, start, stop - start, head_only,
                           entry)
                return
        self._send(channel, 200, _merge(variant.headers, app_headers), variant, 0, variant.size, head_only, entry)

    def _send(self, channel: Any, status: int, headers: list, variant: Variant, offset: int, count: int,
              head_only: bool, entry: StaticFile) -> None:
        if head_only:
            channel.respond(status, headers, b"")
            return
        body = variant.body
        if body is None and variant.size <= self.cache_file_max:
            body = self._load(variant)
        if body is not None:
            channel.respond(status, headers, body if count == variant.size else body[offset:offset + count])
            return
        try:
            fd = os.open(variant.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            entry.checked = float("-inf")  # re-stat on the next request
            channel.respond(404, _NOT_FOUND, b"Not Found\n")
            return
        channel.respond_fd(status, headers, fd, offset, count)


# the file decides these; the rest of an app's headers (Content-Type, Content-Disposition, Cache-Control,
# Set-Cookie, its own X- headers ...) replace or join the file's, as with nginx's X-Accel-Redirect. An app's
# Content-Encoding is kept: it describes the file's bytes (django-sendfile2 sets gzip for "report.csv.gz")
_FILE_OWNED = frozenset({b"content-length", b"content-range", b"etag", b"last-modified", b"accept-ranges",
                         b"transfer-encoding", b"connection"})
_KEPT_ON_304 = frozenset({b"cache-control", b"expires", b"vary", b"set-cookie", b"content-location"})


def with_app_headers(file_headers: list, app_headers: Iterable[tuple[bytes, bytes]],
                     not_modified: bool = False) -> list:
    """The headers of a file response that replaces an app response."""
    app = []
    for name, value in app_headers:
        lname = name.lower()
        if lname not in _FILE_OWNED and (not not_modified or lname in _KEPT_ON_304):
            app.append((lname, value))
    names = {name for name, _ in app}
    return [(n, v) for n, v in file_headers if n not in names] + app


def _merge(file_headers: list, app_headers: list | None, not_modified: bool = False) -> list:
    return file_headers if app_headers is None else with_app_headers(file_headers, app_headers, not_modified)


def _choose(entry: StaticFile, accept: bytes) -> Variant:
    """The acceptable representation the client likes best (ties: the smallest)."""
    accepted = accept_encoding(accept)
    best = entry.identity
    best_q = coding_quality(accepted, "identity")
    for variant in entry.alternatives:  # smallest first
        q = coding_quality(accepted, variant.encoding or "identity")
        if q > best_q or (q == best_q and q > 0 and variant.size < best.size):
            best, best_q = variant, q
    return best


def _if_range_ok(value: bytes, variant: Variant, entry: StaticFile) -> bool:
    """``If-Range``: the range applies only if the validator still matches (strong comparison)."""
    value = value.strip()
    if value.startswith(b'"'):
        return value == variant.etag
    if value.startswith(b"W/"):
        return False
    return bool(entry.last_modified) and value == entry.last_modified


class Engines:
    """Several engines asked in turn (STATIC_ROOT and MEDIA_ROOT are served with different rules)."""

    __slots__ = ("engines",)

    def __init__(self, engines: Iterable[StaticFiles]) -> None:
        self.engines = tuple(engines)

    def serve(self, channel: Any, head: Any) -> bool:
        for engine in self.engines:
            if engine.serve(channel, head):
                return True
        return False
