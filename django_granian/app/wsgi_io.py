"""The WSGI cycle's file-like objects: the request body read whole before the app runs
(:class:`BufferedBody`, the default), ``wsgi.input`` streamed to the app thread by the event loop
(:class:`WSGIInput`, with ``--no-request-body-buffering``) and ``wsgi.file_wrapper`` (a file the
event loop may send with sendfile)."""

from __future__ import annotations

import io
import os
import stat
import tempfile
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .wsgi import WSGICycle

INPUT_HIGH_WATER = 256 * 1024  # buffered request body before the channel is asked to stop reading


class BufferedBody:
    """A request body collected on the event loop before the app runs: chunks in memory up to ``limit``
    bytes, then everything in an anonymous temporary file in ``temp_dir`` (deleted when closed), like
    nginx's client_body_buffer_size and client_body_temp_path."""

    __slots__ = ("limit", "temp_dir", "chunks", "size", "file")

    def __init__(self, limit: int, temp_dir: str | None) -> None:
        self.limit = limit
        self.temp_dir = temp_dir
        self.chunks: list[bytes] = []
        self.size = 0
        self.file: Any = None

    def write(self, data: bytes) -> None:
        """Loop thread; OSError when the temporary file cannot be created or written."""
        self.size += len(data)
        file = self.file
        if file is not None:
            file.write(data)
            return
        self.chunks.append(data)
        if self.size > self.limit:
            file = self.file = tempfile.TemporaryFile(dir=self.temp_dir)
            file.write(b"".join(self.chunks))
            self.chunks = []

    def reader(self) -> Any:
        """``wsgi.input``: the file rewound, or the bytes in memory."""
        file = self.file
        if file is not None:
            file.flush()
            file.seek(0)
            return file
        chunks = self.chunks
        return io.BytesIO(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def close(self) -> None:
        self.chunks = []
        file, self.file = self.file, None
        if file is not None:
            file.close()


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; the server may send it with sendfile."""

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def region(self, length: int) -> tuple[int, int, int] | None:
        """``(fd, offset, count)`` for sending the rest of a regular file from the event loop: a
        duplicate descriptor (it outlives ``close()``, even of a deleted temporary file) and how many
        bytes to send (``length`` when the app declared one, else up to the end). None when the file
        has no descriptor, is not a regular file, or is shorter than the declared length."""
        try:
            fd = os.dup(self.filelike.fileno())
        except (AttributeError, OSError, ValueError):  # io.BytesIO, sockets, closed files
            return None
        try:
            st = os.fstat(fd)
            offset = self.filelike.tell()
            available = st.st_size - offset
            if stat.S_ISREG(st.st_mode) and offset >= 0 and available >= max(length, 0):
                return fd, offset, length if length >= 0 else available
        except (AttributeError, OSError, ValueError):
            pass
        os.close(fd)
        return None

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class WSGIInput:
    """``wsgi.input``: a blocking, streaming reader fed by the event loop."""

    def __init__(self, cycle: WSGICycle, timeout: float) -> None:
        self._cycle = cycle
        self._chunks: deque[bytes] = deque()
        self._buf = b""
        self._done = False
        self._cond = threading.Condition(threading.Lock())
        self._buffered = 0
        self._asked = False
        self._timeout = timeout

    # loop thread
    def feed(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered > INPUT_HIGH_WATER:
                self._cycle.channel.body_pressure(True)
            self._cond.notify()

    def end(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # app thread
    def _fill(self) -> bool:
        """Move received chunks into the buffer; False at the end of the body."""
        cycle = self._cycle
        with self._cond:
            while not self._chunks:
                if self._done:
                    return False
                if cycle.disconnected:
                    raise OSError("client disconnected while sending the request body")
                if not self._asked:
                    self._asked = True
                    cycle.loop.call_soon_threadsafe(cycle.channel.want_body, cycle)
                if not self._cond.wait(self._timeout):
                    raise OSError("timed out reading the request body")
            data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
            self._chunks.clear()
            relieve = self._buffered > INPUT_HIGH_WATER
            self._buffered = 0
        if relieve:
            cycle.loop.call_soon_threadsafe(cycle.channel.body_pressure, False)
        self._buf = self._buf + data if self._buf else data
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
            data, self._buf = self._buf, b""
            return data
        while len(self._buf) < size and self._fill():
            pass
        data, self._buf = self._buf[:size], self._buf[size:]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        while True:
            idx = self._buf.find(b"\n")
            if idx >= 0:
                end = idx + 1
                break
            if size is not None and 0 <= size <= len(self._buf):
                end = size
                break
            if not self._fill():
                end = len(self._buf)
                break
        if size is not None and 0 <= size < end:
            end = size
        line, self._buf = self._buf[:end], self._buf[end:]
        return line

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                break
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> WSGIInput:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class _EmptyInput:
    """``wsgi.input`` for requests without a body (shared, stateless)."""

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Any:
        return iter(())


EMPTY_INPUT = _EmptyInput()
