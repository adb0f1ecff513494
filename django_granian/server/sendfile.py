"""File bodies: zero-copy ``os.sendfile`` on plain-TCP HTTP/1.1, chunked reads everywhere else.

Used by ASGI ``http.response.pathsend``, RSGI ``response_file``/``response_file_range`` and the static
file engine. Neither path ever holds more than one chunk of a file in memory.

Zero-copy: asyncio's ``loop.sendfile`` is not implemented by uvloop (``NotImplementedError``), so the
HTTP/1.1 path drives ``os.sendfile`` itself on the connection's non-blocking socket. It first waits
until the transport's own write buffer (the response head) is flushed, then calls ``os.sendfile``
until ``EAGAIN`` and waits for writability on a ``dup`` of the socket descriptor (the event loop
refuses ``add_writer`` on a descriptor owned by a transport). The same code runs on the stock
asyncio loop. Whether a channel can take a file that way is its capability
(``channel.sendfile_socket()``: the descriptor, or -1): TLS connections, HTTP/2 streams, chunked
responses and any other channel get ``os.pread`` chunks through the channel's ``send_body``/``drain``
(flow control included). The channels reach this module through their ``send_file_response``,
``send_fd_response`` and ``respond_fd`` (``server/channel.py``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from typing import Any, Iterator

from ..futures import wake
from ..protocol.http11 import NO_BODY_STATUS

logger = logging.getLogger("django_granian.server")

CHUNK_SIZE = 256 * 1024  # chunked path: bytes read per os.pread
SENDFILE_MIN = 64 * 1024  # below this a read + write beats the sendfile set-up
_HAVE_SENDFILE = hasattr(os, "sendfile")
_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]


class FileTruncated(OSError):
    """The file became shorter than the Content-Length already sent (changed while being served)."""


def open_range(path: str, start: int = 0, end: int | None = None) -> tuple[int, int, int]:
    """Open ``path`` and clamp ``[start, end)`` to its size: ``(fd, size, count)``.

    Raises ``FileNotFoundError``/``IsADirectoryError``/``PermissionError`` before anything is sent.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", path)
        size = st.st_size
    except BaseException:
        os.close(fd)
        raise
    start = min(max(start, 0), size)
    stop = size if end is None else min(max(end, start), size)
    return fd, size, stop - start


def read_chunks(fd: int, offset: int, count: int, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """``count`` bytes of ``fd`` from ``offset``, ``chunk_size`` at a time (raises FileTruncated)."""
    while count > 0:
        chunk = os.pread(fd, min(chunk_size, count), offset)
        if not chunk:
            raise FileTruncated(errno.EIO, "file shrank while being sent")
        offset += len(chunk)
        count -= len(chunk)
        yield chunk


async def send_file_response(conn: Any, status: int, headers: Any, path: str, start: int = 0,
                             end: int | None = None) -> None:
    """Send a whole response whose body is ``path[start:end]`` (``end`` exclusive, None = EOF).

    The app's ``content-length`` is replaced by the real one. A file that cannot be opened (missing,
    a directory, no permission) is logged and answered with a 500 instead of the app's head, so the
    connection stays usable.
    """
    try:
        fd, _size, count = open_range(path, start, end)
    except OSError as exc:
        logger.error("file response: cannot open %r: %s", path, exc.strerror or exc)
        conn.send_head(500, _ERROR_HEADERS, b"Internal Server Error\n", True)
        return
    await send_fd_response(conn, status, headers, fd, start, count)


async def send_fd_response(conn: Any, status: int, headers: Any, fd: int, offset: int, count: int) -> None:
    """Send a whole response whose body is ``count`` bytes of ``fd`` from ``offset``; closes ``fd``.
    The app's ``content-length`` is replaced by ``count``."""
    try:
        out = [(name, value) for name, value in headers if name.lower() != b"content-length"]
        out.append((b"content-length", b"%d" % count))
        conn.send_head(status, out, b"", count == 0)
        conn = getattr(conn, "body_channel", conn)  # a response filter that leaves the body alone steps aside
        if count and not conn.head_only and status >= 200 and status not in NO_BODY_STATUS:
            await send_fd(conn, fd, offset, count)
    finally:
        os.close(fd)


async def send_fd(conn: Any, fd: int, offset: int, count: int) -> None:
    """Send ``count`` bytes of ``fd`` from ``offset`` as the rest of the current response body.

    The head (with Content-Length) must already have been sent. On plain-TCP HTTP/1.1 the bytes go
    with ``os.sendfile``; otherwise through ``conn.send_body`` in chunks. On a short file the
    connection is aborted (the Content-Length promise cannot be kept).
    """
    try:
        sock_fd = conn.sendfile_socket() if count >= SENDFILE_MIN and _HAVE_SENDFILE else -1
        if sock_fd >= 0:
            await _sendfile(conn, sock_fd, fd, offset, count)
        else:
            await send_chunked(conn, fd, offset, count)
    except FileTruncated:
        conn.abort("file shrank while being sent")


async def send_chunked(conn: Any, fd: int, offset: int, count: int, chunk_size: int = CHUNK_SIZE) -> None:
    """The portable body path: ``send_body`` + ``drain`` per chunk (TLS, HTTP/2, small files)."""
    sent = 0
    for chunk in read_chunks(fd, offset, count, chunk_size):
        sent += len(chunk)
        conn.send_body(chunk, sent >= count)
        if conn.writing_paused:
            await conn.drain()
        elif sent < count:
            await asyncio.sleep(0)  # let the channel flush (HTTP/2 writes once per loop iteration)
        if conn.gone:
            return


async def _sendfile(conn: Any, sock_fd: int, fd: int, offset: int, count: int) -> None:
    """``os.sendfile`` to ``sock_fd``, an HTTP/1.1 connection's socket (see the module docstring)."""
    transport = conn.transport
    loop = conn.loop
    if transport.get_write_buffer_size():
        # wait until the head (and anything before it) has left the transport's own buffer
        low, high = transport.get_write_buffer_limits()
        transport.set_write_buffer_limits(high=0, low=0)
        try:
            while transport.get_write_buffer_size() and not transport.is_closing():
                await conn.drain()
        finally:
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=high, low=low)
        if transport.is_closing():
            return
    wait_fd = -1
    try:
        while count > 0:
            try:
                n = os.sendfile(sock_fd, fd, offset, min(count, 1 << 30))
            except BlockingIOError:
                if wait_fd < 0:
                    wait_fd = os.dup(sock_fd)
                await _writable(conn, loop, wait_fd)
                if conn.gone:  # the client went away
                    return
                continue
            except InterruptedError:
                continue
            except OSError as exc:  # EPIPE, ECONNRESET: the client went away
                conn.abort(f"sendfile failed: {exc}")
                return
            if n == 0:
                raise FileTruncated(errno.EIO, "file shrank while being sent")
            offset += n
            count -= n
            conn.resp_bytes += n
            conn.resp_left -= n
    finally:
        if wait_fd >= 0:
            os.close(wait_fd)


async def _writable(conn: Any, loop: asyncio.AbstractEventLoop, wait_fd: int) -> None:
    """Wait until the socket is writable or the connection is lost (h1 resolves ``drain_waiter``
    in ``connection_lost``; the dup keeps the socket alive, so epoll alone would never tell us)."""
    waiter = loop.create_future()
    conn.drain_waiter = waiter
    loop.add_writer(wait_fd, wake, waiter)
    try:
        await waiter
    finally:
        loop.remove_writer(wait_fd)
        if conn.drain_waiter is waiter:
            conn.drain_waiter = None


