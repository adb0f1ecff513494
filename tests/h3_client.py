"""A small HTTP/3 client for the tests, on aioquic's own QUIC and HTTP/3 connection (a real client).

``H3Client`` is async (one QUIC connection); ``h3_request`` runs one request in a fresh event loop for
sync tests. Beyond plain requests it can send a request in pieces (``open``/``send_data``), reset a
stream, send raw stream bytes, and it records what a plain client would not show: the server's
GOAWAY (aioquic's H3Connection drops its payload, so the control stream is read here too), stream
resets, and how the connection ended.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any, Iterable

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer, BufferReadError
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived, StreamReset

from tests.core_client import HeaderLookup


@dataclass
class H3Response(HeaderLookup):
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    reset: int | None = None  # the server reset the stream with this error code
    done: bool = False


class _ClientH3(H3Connection):
    """aioquic's H3Connection checks a response's content-length against its body, which a response to
    HEAD does not have (RFC 9110 section 9.3.2): not for the streams in ``head_streams``."""

    def __init__(self, quic: Any) -> None:
        super().__init__(quic)
        self.head_streams: set[int] = set()

    def _check_content_length(self, stream: Any) -> None:
        if stream.stream_id not in self.head_streams:
            super()._check_content_length(stream)


class _Protocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = _ClientH3(self._quic)
        self.responses: dict[int, H3Response] = {}
        self.waiters: dict[int, asyncio.Future] = {}
        self.goaway: int | None = None  # the stream id of the server's GOAWAY
        self.terminated: ConnectionTerminated | None = None
        self._control = b""
        self._control_sid: int | None = None

    def _wake(self, sid: int) -> None:
        waiter = self.waiters.pop(sid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            for sid in list(self.waiters):
                self._wake(sid)
            return
        if isinstance(event, StreamDataReceived) and event.stream_id % 4 == 3:
            self._read_control(event.stream_id, event.data)
        if isinstance(event, StreamReset) and event.stream_id in self.responses:
            resp = self.responses[event.stream_id]
            resp.reset = event.error_code
            resp.done = True
            self._wake(event.stream_id)
        for h3_event in self.h3.handle_event(event):
            sid = getattr(h3_event, "stream_id", None)
            resp = self.responses.get(sid) if sid is not None else None
            if resp is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                headers = [(n, v) for n, v in h3_event.headers if not n.startswith(b":")]
                status = dict(h3_event.headers).get(b":status")
                if status is None:
                    resp.trailers = headers
                elif int(status) < 200:
                    resp.informational.append((int(status), headers))
                else:
                    resp.status = int(status)
                    resp.headers = headers
            elif isinstance(h3_event, DataReceived):
                resp.body += h3_event.data
            if getattr(h3_event, "stream_ended", False):
                resp.done = True
                self._wake(sid)

    def _read_control(self, sid: int, data: bytes) -> None:
        """The server's control stream: only GOAWAY is of interest (its stream id)."""
        if self._control_sid is None:
            if not data or data[0] != 0:  # stream type 0x00: control
                return
            self._control_sid = sid
            data = data[1:]
        elif sid != self._control_sid:
            return
        self._control += data
        buf = Buffer(data=self._control)
        while True:
            start = buf.tell()
            try:
                frame_type = buf.pull_uint_var()
                length = buf.pull_uint_var()
                payload = buf.pull_bytes(length)
            except BufferReadError:
                buf.seek(start)
                break
            if frame_type == FrameType.GOAWAY:
                self.goaway = Buffer(data=payload).pull_uint_var()
        self._control = self._control[buf.tell():]


class H3Client:
    """One HTTP/3 connection; ``async with H3Client.connect(port, ca) as client: ...``."""

    def __init__(self, proto: _Protocol, authority: bytes) -> None:
        self.proto = proto
        self.authority = authority

    @staticmethod
    def configuration(ca: str | None, server_name: str = "localhost", **options: Any) -> QuicConfiguration:
        config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=server_name, **options)
        if ca is not None:
            config.load_verify_locations(ca)
        else:
            config.verify_mode = ssl.CERT_NONE
        return config

    @classmethod
    def connect(cls, port: int, ca: str | None = None, host: str = "127.0.0.1", server_name: str = "localhost",
                **options: Any) -> Any:
        configuration = cls.configuration(ca, server_name, **options)

        class _Connected:
            async def __aenter__(self) -> H3Client:
                self._cm = connect(host, port, configuration=configuration, create_protocol=_Protocol)
                proto = await asyncio.wait_for(self._cm.__aenter__(), 10)
                return H3Client(proto, f"{server_name}:{port}".encode())

            async def __aexit__(self, *exc: Any) -> None:
                await asyncio.wait_for(self._cm.__aexit__(*exc), 10)

        return _Connected()

    # -- requests -----------------------------------------------------------------------------------
    def open(self, method: str = "GET", path: str = "/", headers: Iterable[tuple[bytes, bytes]] = (),
             end: bool = False, protocol: bytes | None = None) -> int:
        """Send a request head; returns the stream id (``end``: no body follows)."""
        quic = self.proto._quic
        sid = quic.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", self.authority),
                  (b":path", path.encode())]
        if protocol is not None:
            fields.append((b":protocol", protocol))
        fields.extend(headers)
        self.proto.responses[sid] = H3Response()
        if method == "HEAD":
            self.proto.h3.head_streams.add(sid)
        self.proto.h3.send_headers(sid, fields, end_stream=end)
        self.proto.transmit()
        return sid

    def send_data(self, sid: int, data: bytes, end: bool = False) -> None:
        self.proto.h3.send_data(sid, data, end)
        self.proto.transmit()

    def send_raw(self, sid: int, data: bytes, end: bool = False) -> None:
        """Bytes on the QUIC stream that bypass the HTTP/3 framing (hand-made frames)."""
        self.proto._quic.send_stream_data(sid, data, end)
        self.proto.transmit()

    def reset(self, sid: int, code: int = 0x10C) -> None:  # H3_REQUEST_CANCELLED
        self.proto._quic.reset_stream(sid, code)
        self.proto.transmit()

    async def response(self, sid: int, timeout: float = 10.0) -> H3Response:
        resp = self.proto.responses[sid]
        while not resp.done and self.proto.terminated is None:
            waiter = self.proto.waiters.get(sid)
            if waiter is None:
                waiter = self.proto.waiters[sid] = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        return resp

    async def request(self, method: str = "GET", path: str = "/", headers: Iterable[tuple[bytes, bytes]] = (),
                      body: bytes = b"", timeout: float = 10.0) -> H3Response:
        sid = self.open(method, path, headers, end=not body)
        if body:
            self.send_data(sid, body, True)
        return await self.response(sid, timeout)

    async def get(self, path: str = "/", *headers: tuple[bytes, bytes]) -> H3Response:
        return await self.request("GET", path, headers)

    async def wait_closed(self, timeout: float = 10.0) -> ConnectionTerminated | None:
        await asyncio.wait_for(self.proto.wait_closed(), timeout)
        return self.proto.terminated

    @property
    def terminated(self) -> ConnectionTerminated | None:
        return self.proto.terminated


def h3_request(port: int, ca: str | None, method: str = "GET", path: str = "/",
               headers: Iterable[tuple[bytes, bytes]] = (), body: bytes = b"", **options: Any) -> H3Response:
    """One request on a new connection, from sync code."""

    async def run() -> H3Response:
        async with H3Client.connect(port, ca, **options) as client:
            return await client.request(method, path, list(headers), body)

    return asyncio.run(run())
