"""User-uploaded media (Django's MEDIA_ROOT) served by the static engine with defaults safe for files
nobody reviewed: ``X-Content-Type-Options: nosniff`` on every response, ``Content-Disposition:
attachment`` for the types a browser would run script in (HTML, SVG, XML; ``--media-attachment-types``),
no directory index, no ``name.gz``/``name.br`` siblings, no "immutable" caching for hashed-looking
names, and no scan at start: every file is looked up on disk when first asked for, so uploads made
after start are found and a big MEDIA_ROOT costs nothing at start-up."""

from __future__ import annotations

from typing import Any

from ..compression.policy import TypeMatcher
from .files import StaticFiles

NOSNIFF = (b"x-content-type-options", b"nosniff")


def never_immutable(path: str, url: str) -> bool:
    return False


def media_files(config: Any) -> StaticFiles | None:
    """The media engine of ``--media-path-mount``, or None."""
    if not config.media_path_mount:
        return None
    return StaticFiles([(config.media_path_route, config.media_path_mount)], expires=config.media_path_expires,
                       index_file=None, follow_symlinks=config.static_path_follow_symlinks,
                       immutable=never_immutable, scan=False, siblings=False, extra_headers=[NOSNIFF],
                       attachment=TypeMatcher(config.media_attachment_types))
