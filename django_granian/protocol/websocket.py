"""Sans-IO WebSocket: handshake checks and negotiation, and a frame codec on top of wsproto.

Shared by the HTTP/1.1 Upgrade (RFC 6455) and HTTP/2 extended CONNECT (RFC 8441) transports:

* :func:`check_h1_handshake` / :func:`check_h2_handshake` validate the opening request and raise
  :class:`HandshakeError` (status 400, or 426 with ``Sec-WebSocket-Version: 13``) when it is not
  acceptable; :func:`accept_token` computes ``Sec-WebSocket-Accept`` (HTTP/1.1 only).
* :func:`offered_subprotocols` and :func:`negotiate_extensions` read the offer from the request
  headers; negotiation is the same for both transports.
* :class:`FrameCodec` turns received bytes into complete messages (``str``/``bytes``), answers
  pings, enforces the maximum message size (close 1009, also *after* permessage-deflate
  decompression, so a compression bomb cannot inflate past the limit) and serialises outgoing
  frames. No asyncio, no sockets, no clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import zlib
from typing import Any

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol
from wsproto.utilities import LocalProtocolError

from .errors import ProtocolError

__all__ = [
    "HandshakeError", "check_h1_handshake", "check_h2_handshake", "accept_token", "offered_subprotocols",
    "negotiate_extensions", "FrameCodec", "Closed", "BoundedDeflate",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION_HEADERS = [(b"sec-websocket-version", b"13")]

NORMAL, GOING_AWAY, PROTOCOL_ERROR, NO_STATUS, ABNORMAL = 1000, 1001, 1002, 1005, 1006
INVALID_DATA, MESSAGE_TOO_BIG, INTERNAL_ERROR = 1007, 1009, 1011


class HandshakeError(ProtocolError):
    """The opening handshake is not acceptable; ``headers`` go into the error response."""

    def __init__(self, status: int, reason: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(status, reason)
        self.headers = headers or []


def _tokens(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    out: list[bytes] = []
    for hname, value in headers:
        if hname == name:
            out.extend(t.strip(b" \t").lower() for t in value.split(b","))
    return out


def _single(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    found = None
    for hname, value in headers:
        if hname == name:
            if found is not None:
                raise HandshakeError(400, f"repeated {name.decode()} header")
            found = value.strip(b" \t")
    return found


def _check_version(headers: list[tuple[bytes, bytes]]) -> None:
    version = _single(headers, b"sec-websocket-version")
    if version != b"13":
        raise HandshakeError(426, "unsupported Sec-WebSocket-Version (only 13)", list(VERSION_HEADERS))


def check_h1_handshake(method: str, http_version: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """Validate an HTTP/1.1 Upgrade request (RFC 6455 4.2.1); returns the Sec-WebSocket-Key."""
    if method != "GET":
        raise HandshakeError(400, "WebSocket handshake must use GET")
    if http_version != "1.1":
        raise HandshakeError(400, "WebSocket handshake requires HTTP/1.1")
    if b"websocket" not in _tokens(headers, b"upgrade"):
        raise HandshakeError(400, "missing Upgrade: websocket")
    if b"upgrade" not in _tokens(headers, b"connection"):
        raise HandshakeError(400, "missing Connection: upgrade")
    key = _single(headers, b"sec-websocket-key")
    if key is None:
        raise HandshakeError(400, "missing Sec-WebSocket-Key")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "invalid Sec-WebSocket-Key")
    _check_version(headers)
    return key


def check_h2_handshake(method: str, protocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
    """Validate an HTTP/2 extended CONNECT request (RFC 8441 4/5): ``:protocol`` websocket, version 13."""
    if method != "CONNECT" or protocol != "websocket":
        raise HandshakeError(400, "WebSocket over HTTP/2 requires CONNECT with :protocol websocket")
    _check_version(headers)


def accept_token(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def offered_subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    out: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            out.extend(p for p in (t.strip(" \t") for t in value.decode("latin-1").split(",")) if p)
    return out


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate that never inflates a message past ``max_size`` bytes (close 1009)."""

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size
        self._inflated = 0

    def frame_inbound_payload_data(self, proto: FrameDecoder | FrameProtocol, data: bytes) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        room = self.max_size - self._inflated + 1
        try:
            out = self._decompressor.decompress(bytes(data), room)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._decompressor.unconsumed_tail or self._inflated > self.max_size:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(self, proto: FrameDecoder | FrameProtocol, fin: bool) -> bytes | CloseReason | None:
        compressed = self._inbound_compressed and self._inbound_is_compressible
        if compressed and fin:
            assert self._decompressor is not None
            room = self.max_size - self._inflated + 1
            try:
                data = self._decompressor.decompress(b"\x00\x00\xff\xff", room)
            except zlib.error:
                return CloseReason.INVALID_FRAME_PAYLOAD_DATA
            if self._decompressor.unconsumed_tail or self._inflated + len(data) > self.max_size:
                return CloseReason.MESSAGE_TOO_BIG
            if self.client_no_context_takeover:
                self._decompressor = None
            self._inbound_compressed = None
            self._inflated = 0
            return data
        if fin:
            self._inflated = 0
        return super().frame_inbound_complete(proto, fin)


def negotiate_extensions(headers: list[tuple[bytes, bytes]], deflate: bool,
                         max_size: int) -> tuple[bytes | None, list[Extension]]:
    """Accept the first acceptable permessage-deflate offer (when enabled).

    Returns the ``Sec-WebSocket-Extensions`` response value (None: no extension) and the
    extension objects for :class:`FrameCodec`.
    """
    if not deflate:
        return None, []
    for name, value in headers:
        if name != b"sec-websocket-extensions":
            continue
        for offer in value.decode("latin-1").split(","):
            if offer.split(";", 1)[0].strip().lower() != "permessage-deflate":
                continue
            ext = BoundedDeflate(max_size)
            try:
                params = ext.accept(offer)
            except ValueError:  # malformed parameters: decline this offer
                continue
            if params is None or params is False:
                continue
            if isinstance(params, str) and params:
                return b"permessage-deflate; " + params.encode("ascii"), [ext]
            return b"permessage-deflate", [ext]
    return None, []


class Closed:
    """The WebSocket is closed; ``code``/``reason`` are reported to the app as websocket.disconnect."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"Closed({self.code}, {self.reason!r})"


_OPEN = ConnectionState.OPEN
_XOR = [bytes(a ^ b for a in range(256)) for b in range(256)]


def _unmask_large(payload: bytes, mask: bytes) -> bytes:
    """XOR with the 4-byte mask via four strided ``translate`` calls (linear, C speed)."""
    buf = bytearray(payload)
    for i in range(4):
        buf[i::4] = buf[i::4].translate(_XOR[mask[i]])
    return bytes(buf)


class FrameCodec:
    """Server side frame codec (wsproto underneath).

    ``receive(data)`` returns a list of complete messages (``str`` or ``bytes``) possibly ended by
    a :class:`Closed`; bytes to send back (pongs, the answering Close frame) accumulate in
    ``out`` and are taken with :meth:`take_output`. ``pong`` counts pongs received.
    """

    __slots__ = ("conn", "max_size", "parts", "size", "out", "failure", "pongs", "closed", "close_sent", "_fast")

    def __init__(self, max_size: int, extensions: list[Extension] | None = None, data: bytes = b"") -> None:
        self.conn = Connection(ConnectionType.SERVER, extensions)
        self.max_size = max_size
        self.parts: list[Any] = []
        self.size = 0
        self.out = bytearray()
        self.failure = b""  # our Close frame after a protocol violation (see take_failure)
        self.pongs = 0
        self.closed = False  # a Close was received or the codec failed: nothing more to read
        self.close_sent = False
        self._fast = not extensions  # unextended frames are serialised here, not by wsproto
        if data:
            self.receive(data)

    def take_output(self) -> bytes:
        out = bytes(self.out) + self.take_failure()
        self.out.clear()
        return out

    def take_failure(self) -> bytes:
        """The Close frame (1002, 1007, 1009) that fails the connection after a violation by the peer, kept
        apart from :attr:`out` so the session can first let the app answer the messages before it."""
        failure, self.failure = self.failure, b""
        return failure

    def receive(self, data: bytes) -> list[Any]:
        if self.closed:
            return []
        if self._fast and self._idle():
            result, data = self._receive_fast(data)
            if not data:
                return result
            return result + self._receive_slow(data)
        return self._receive_slow(data)

    def _idle(self) -> bool:
        """wsproto holds no partial frame or fragmented message (so frames may bypass it)."""
        try:
            proto = self.conn._proto
            decoder = proto._frame_decoder
            return decoder.header is None and not decoder.buffer.buffer and proto._message_decoder.opcode is None
        except AttributeError:  # pragma: no cover - another wsproto version: always use wsproto
            self._fast = False
            return False

    def _receive_fast(self, data: bytes) -> tuple[list[Any], bytes]:
        """Complete, unfragmented, masked text/binary frames without RSV bits, parsed here; the
        rest (control frames, fragments, partial frames, anything invalid) is left to wsproto.
        Differential-tested against wsproto (tests/test_websocket.py)."""
        out: list[Any] = []
        pos = 0
        size = len(data)
        max_size = self.max_size
        while size - pos >= 6:
            b0 = data[pos]
            b1 = data[pos + 1]
            if (b0 != 0x81 and b0 != 0x82) or not b1 & 0x80:
                break
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if size - pos < 8:
                    break
                n = (data[pos + 2] << 8) | data[pos + 3]
                if n < 126:
                    break
                start = pos + 4
            elif n == 127:
                break
            if n > max_size or size - start - 4 < n:
                break
            mask = data[start:start + 4]
            start += 4
            end = start + n
            if n <= 2048:  # one big-integer XOR: fastest for small payloads
                key = int.from_bytes(mask * (n >> 2) + mask[:n & 3], "little")
                payload = (int.from_bytes(data[start:end], "little") ^ key).to_bytes(n, "little")
            else:
                payload = _unmask_large(data[start:end], mask)
            if b0 == 0x81:
                try:
                    out.append(payload.decode("utf-8"))
                except UnicodeDecodeError:
                    break
            else:
                out.append(payload)
            pos = end
        return out, (data[pos:] if pos else data)

    def _receive_slow(self, data: bytes) -> list[Any]:
        conn = self.conn
        try:
            conn.receive_data(data)
        except LocalProtocolError:
            self.closed = True
            return []
        result: list[Any] = []
        for event in conn.events():
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                payload = event.data  # type: ignore[attr-defined]
                self.size += len(payload)
                if self.size > self.max_size:
                    result.append(self._fail(MESSAGE_TOO_BIG, "message too big"))
                    return result
                if event.message_finished:  # type: ignore[attr-defined]
                    if self.parts:
                        self.parts.append(payload)
                        payload = ("" if kind is TextMessage else b"").join(self.parts)
                        self.parts = []
                    elif kind is BytesMessage and type(payload) is not bytes:
                        payload = bytes(payload)
                    self.size = 0
                    result.append(payload)
                elif payload:
                    self.parts.append(payload)
            elif kind is Ping:
                if conn.state is _OPEN:
                    self.out += conn.send(event.response())  # type: ignore[attr-defined]
            elif kind is Pong:
                self.pongs += 1
            elif kind is CloseConnection:
                code = event.code  # type: ignore[attr-defined]
                reason = event.reason or ""  # type: ignore[attr-defined]
                self.closed = True
                if conn.state is ConnectionState.REMOTE_CLOSING:
                    # the peer closed: answer with the same code (RFC 6455 5.5.1)
                    self.close_sent = True
                    self.out += conn.send(CloseConnection(code=code))  # 1005 (no code) -> empty Close
                    result.append(Closed(int(code), reason))
                elif conn.state is ConnectionState.CLOSED and self.close_sent:
                    result.append(Closed(int(code), reason))  # the answer to our own Close
                else:
                    # wsproto reports a protocol violation as a CloseConnection it did not receive
                    result.append(self._fail(int(code), reason))
                return result
        return result

    def _fail(self, code: int, reason: str) -> Closed:
        """Close because of what the peer sent (1002, 1007, 1009)."""
        self.closed = True
        self.failure = self.close(code, reason[:120])
        return Closed(code, reason)

    def send(self, data: str | bytes) -> bytes:
        """One complete message (text for ``str``, binary for ``bytes``)."""
        if self._fast:
            if type(data) is str:
                payload = data.encode("utf-8")
                first = 0x81
            else:
                payload = bytes(data)  # type: ignore[arg-type]
                first = 0x82
            n = len(payload)
            if n < 126:
                return bytes((first, n)) + payload
            if n < 65536:
                return struct.pack("!BBH", first, 126, n) + payload
            return struct.pack("!BBQ", first, 127, n) + payload
        if self.conn.state is not _OPEN:
            return b""
        event = TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        return bytes(self.conn.send(event))

    def ping(self, payload: bytes = b"") -> bytes:
        if self.conn.state is not _OPEN:
            return b""
        return bytes(self.conn.send(Ping(payload=payload)))

    def close(self, code: int = NORMAL, reason: str = "") -> bytes:
        """Our Close frame (empty once a Close was sent)."""
        if self.close_sent:
            return b""
        self.close_sent = True
        if code in (NO_STATUS, ABNORMAL, 1015):
            code, reason = NORMAL, ""
        try:
            return bytes(self.conn.send(CloseConnection(code=code, reason=reason or None)))
        except LocalProtocolError:
            return b""
