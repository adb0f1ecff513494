"""A small raw-socket HTTP/1.1 client for the server-core tests: exact bytes out, strict parsing in."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar


class HeaderLookup:
    """Case-insensitive lookups in ``headers`` (lowercase byte names), for the tests' response types."""

    headers: list[tuple[bytes, bytes]]

    def header(self, name: str) -> bytes | None:
        wanted = name.lower().encode()
        for n, v in self.headers:
            if n == wanted:
                return v
        return None

    def all(self, name: str) -> list[bytes]:
        wanted = name.lower().encode()
        return [v for n, v in self.headers if n == wanted]


@dataclass
class Response(HeaderLookup):
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    raw_head: bytes = b""


class Conn:
    def __init__(self, port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise EOFError(f"connection closed with {len(self.buf)} of {n} bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._more():
                raise EOFError("connection closed in the middle of a line")
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_response(self, head: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._more():
                raise EOFError(f"connection closed before a response head; got {self.buf!r}")
        raw, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        version, status, reason = (lines[0].split(b" ", 2) + [b""])[:3]
        assert version == b"HTTP/1.1", lines[0]
        resp = Response(int(status), reason, raw_head=raw)
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            assert name and name == name.strip(), f"bad response header line {line!r}"
            resp.headers.append((name.lower(), value.strip()))
        if resp.status < 200 or head or resp.status in (204, 304):
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te is not None:
            assert te == b"chunked" and cl is None
            parts = []
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                parts.append(self._read_exact(size))
                assert self._read_exact(2) == b"\r\n"
            resp.body = b"".join(parts)
        elif cl is not None:
            resp.body = self._read_exact(int(cl))
        else:
            while self._more():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def request(self, data: bytes, head: bool = False) -> Response:
        self.send(data)
        return self.read_response(head=head)

    def is_closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (EOF or reset) within ``timeout``, with nothing
        more sent (extra bytes are kept in ``buf``)."""
        self.sock.settimeout(timeout)
        try:
            return not self._more()
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def read_to_close(self, timeout: float = 10.0) -> bool:
        """Read into ``buf`` until the server closes (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self._more():
                    return True
            except ConnectionResetError:
                return True
            except TimeoutError:
                return False
        return False

    def expect_nothing(self, wait: float = 0.3) -> bool:
        """True when nothing arrives within ``wait`` seconds (the connection stays open and silent)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        self.buf += data
        return False


def get(path: str = "/", *headers: str, method: str = "GET", body: bytes = b"", host: str = "x",
        version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}"]
    if host:
        lines.append(f"Host: {host}")
    lines += headers
    if body and not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.02,
               what: str | Callable[[], str] = "condition") -> T:
    """The tests' one polling loop: call ``check()`` every ``interval`` seconds until it returns something
    truthy (which is returned), or fail after ``timeout`` seconds saying ``what`` was awaited (a callable
    ``what`` is called for the message, e.g. to show the last value seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def concurrent_bodies(port: int, path: str, n: int, timeout: float = 20.0) -> list[bytes]:
    """GET ``path`` on ``n`` connections at once, one thread each; the bodies in completion order."""
    bodies: list[bytes] = []

    def one() -> None:
        with Conn(port, timeout=timeout) as c:
            bodies.append(c.request(get(path)).body)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return bodies


def free_udp_tcp_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (HTTP/3 listens on the HTTPS port's number)."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return int(port)
    raise RuntimeError("no free port")
