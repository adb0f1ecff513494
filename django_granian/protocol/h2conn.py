"""A sans-IO HTTP/2 server connection (RFC 9113): bytes in -> handler calls out, calls in -> bytes out.

This replaces ``h2.connection.H2Connection`` on the server. It keeps the whole protocol (framing, the
stream state machine of RFC 9113 section 5.1, flow control both ways, SETTINGS, PING, GOAWAY,
CONTINUATION, the ``h2c`` upgrade) but is written for a server's hot path:

* frames are parsed with one ``struct.unpack_from`` over the received bytes; no frame or event
  objects are created. What the peer sent is reported by calling methods of a *handler* (the
  asyncio protocol in ``server/h2.py``; see :class:`Handler`) directly;
* header blocks are decoded with the ``hpack`` library. A block that leaves the decoder's dynamic
  table unchanged is a pure function of the table, so it is memoised (:class:`HeaderBlock`, keyed
  by the block bytes; the memo is dropped whenever a block changes the table). A client repeating
  the same request headers - h2load, API clients, health checks - then costs one dict lookup, and
  the handler can memoise what it derives from the block (``HeaderBlock.memo``);
* outgoing frames are appended to a list and handed out with one :meth:`data_to_send` (one
  ``transport.write`` per batch), frame headers are packed with one ``struct`` call, and
  HEADERS + DATA of a small response are built as one bytes object.

No sockets, no event loop, no clock: the caller passes bytes in and writes what comes out.
Connection errors queue a GOAWAY and raise :class:`H2ConnectionError`; stream errors queue a
RST_STREAM and are reported to the handler (``h2_reset(sid, code, remote=False)``).

Differences from the ``h2`` library (which serves as the reference in
``tests/test_h2_differential.py``) are deliberate and listed there, each with its RFC section.

:meth:`H2ServerConnection.receive` cuts the bytes into frames and hands each to the method for its
type (``_data_frame``, ``_headers_frame``, ...; the table is ``_FRAME_HANDLERS``). One class, and so
over 500 lines: receiving and sending share the stream states and both flow-control windows.
"""

from __future__ import annotations

import base64
import binascii
from struct import Struct
from typing import Any, NoReturn, Protocol

from hpack import Decoder
from hpack.exceptions import HPACKError, OversizedHeaderListError

__all__ = ["H2ConnectionError", "H2ServerConnection", "HeaderBlock", "Handler", "PREFACE"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types (RFC 9113 section 6)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# error codes (RFC 9113 section 7)
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD

# settings (RFC 9113 section 6.5.2, RFC 8441)
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6
ENABLE_CONNECT_PROTOCOL = 0x8

MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384
MAX_CONTINUATIONS = 64  # CONTINUATION frames per header block (like h2), against CONTINUATION floods
CLOSED_MEMORY = 1024  # how many closed streams are remembered (to tell how they were closed)
MEMO_BLOCKS = 64  # memoised header blocks per connection
MEMO_BLOCK_BYTES = 4096  # ... each at most this big, encoded and decoded

# how a stream was closed (remembered for frames that arrive later)
_RESET_SENT, _RESET_RECEIVED, _ENDED = 1, 2, 3

_FRAME = Struct(">LBL")  # (length << 8 | type), flags, stream id: the 9-byte frame header
_unpack_frame = _FRAME.unpack_from
_pack_frame = _FRAME.pack
_U32 = Struct(">L")
_U32x2 = Struct(">LL")
_SETTING = Struct(">HL")
_unpack_u32 = _U32.unpack_from
_STREAM_FRAMES = frozenset({DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION})
_CONNECTION_FRAMES = frozenset({SETTINGS, PING, GOAWAY})


class H2ConnectionError(Exception):
    """A connection error: a GOAWAY with ``code`` has been queued; the connection must be closed."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Handler(Protocol):
    """What the connection reports (all calls happen inside :meth:`H2ServerConnection.receive`)."""

    def h2_request(self, sid: int, block: HeaderBlock, end: bool) -> None: ...
    def h2_data(self, sid: int, data: bytes, size: int, end: bool) -> None: ...
    def h2_trailers(self, sid: int, headers: list) -> None: ...
    def h2_reset(self, sid: int, code: int, remote: bool) -> None: ...
    def h2_window(self, sid: int) -> None: ...
    def h2_settings(self, changed: dict[int, int]) -> None: ...
    def h2_ping_ack(self, data: bytes) -> None: ...
    def h2_goaway(self, code: int, last_stream_id: int) -> None: ...
    def h2_control(self) -> None: ...


class HeaderBlock:
    """A decoded header block: ``headers`` (``(name, value)`` byte pairs, shared: never mutate),
    ``length`` (the ``content-length`` value, -1 when absent or not a single valid number) and
    ``memo`` (free for the handler: whatever it derives from ``headers``; a memoised block is
    returned again for the same bytes while the HPACK table is unchanged)."""

    __slots__ = ("headers", "length", "memo")

    def __init__(self, headers: list) -> None:
        self.headers = headers
        self.memo: Any = None
        length = -1
        for name, value in headers:
            if name == b"content-length":
                if length != -1 or not value.isdigit():
                    length = -2  # invalid or repeated: the request is malformed (request validation says so)
                    break
                length = int(value)
        self.length = length if length >= 0 else -1


class _Stream:
    """Per-stream protocol state: windows, END_STREAM both ways, content-length accounting."""

    __slots__ = ("recv_window", "recv_max", "recv_unacked", "send_window", "remote_closed", "local_closed",
                 "length", "received")

    def __init__(self, recv_window: int, send_window: int, length: int, remote_closed: bool) -> None:
        self.recv_window = self.recv_max = recv_window
        self.recv_unacked = 0
        self.send_window = send_window
        self.remote_closed = remote_closed
        self.local_closed = False
        self.length = length
        self.received = 0


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    """One serialised frame."""
    return _pack_frame(len(payload) << 8 | ftype, flags, sid) + payload


class H2ServerConnection:
    """The server side of one HTTP/2 connection.

    ``settings`` are the values we announce (:meth:`initiate` sends them); ``connection_window``
    is the receive window of the whole connection (opened with a WINDOW_UPDATE after SETTINGS).
    """

    def __init__(self, handler: Handler, *, max_concurrent_streams: int = 100, initial_window_size: int = 65535,
                 max_frame_size: int = DEFAULT_MAX_FRAME, max_header_list_size: int = 65536,
                 connection_window: int = DEFAULT_WINDOW, enable_connect_protocol: bool = False) -> None:
        self.on_request = handler.h2_request
        self.on_data = handler.h2_data
        self.on_trailers = handler.h2_trailers
        self.on_reset = handler.h2_reset
        self.on_window = handler.h2_window
        self.on_settings = handler.h2_settings
        self.on_ping_ack = handler.h2_ping_ack
        self.on_goaway = handler.h2_goaway
        self.on_control = handler.h2_control
        self.local_settings: dict[int, int] = {
            MAX_CONCURRENT_STREAMS: max_concurrent_streams,
            INITIAL_WINDOW_SIZE: initial_window_size,
            MAX_FRAME_SIZE: max_frame_size,
            MAX_HEADER_LIST_SIZE: max_header_list_size,
        }
        if enable_connect_protocol:
            self.local_settings[ENABLE_CONNECT_PROTOCOL] = 1
        self.max_streams = max_concurrent_streams
        self.connection_window = connection_window
        # receiving: values in force until the peer acknowledges our SETTINGS
        self.pending_settings: list[dict[int, int]] = []
        self.recv_initial_window = DEFAULT_WINDOW
        self.recv_max_frame = DEFAULT_MAX_FRAME
        self.recv_window = self.recv_max = DEFAULT_WINDOW
        self.recv_unacked = 0
        # sending: the peer's settings
        self.send_initial_window = DEFAULT_WINDOW
        self.send_window = DEFAULT_WINDOW
        self.max_send_frame = DEFAULT_MAX_FRAME
        self.peer_settings: dict[int, int] = {}
        self.decoder = Decoder(max_header_list_size)
        self.max_header_list_size = max_header_list_size
        self.blocks: dict[bytes, HeaderBlock] = {}
        self.streams: dict[int, _Stream] = {}
        self.closed: dict[int, int] = {}
        self.highest = 0  # highest stream id the peer opened
        self.out: list[bytes] = []
        self.buf: bytes | bytearray = b""
        self.need = 0  # bytes needed before the buffered partial frame can be parsed
        self.preface_left = PREFACE
        self.settings_seen = False
        self.dead = False
        self.goaway_sent = False
        # a header block in progress (HEADERS without END_HEADERS, then CONTINUATION frames)
        self.hb_sid = 0
        self.hb_parts: list[bytes] = []
        self.hb_end = False
        self.hb_size = 0
        self.self_dependency = False
        # prepended to the first header block we send (the HPACK dynamic table size update of a
        # stateless encoder, see protocol/http2.py)
        self.header_prefix = b""

    # -- setting up ---------------------------------------------------------------------------------
    def initiate(self) -> None:
        """The server connection preface: our SETTINGS, then the connection window."""
        settings = self.local_settings
        self.pending_settings.append(dict(settings))
        self.out.append(frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in settings.items())))
        extra = self.connection_window - self.recv_max
        if extra > 0:
            self.increment_connection_window(extra)

    def initiate_upgrade(self, settings_header: bytes) -> None:
        """``Upgrade: h2c`` (RFC 7540 section 3.2): apply the client's ``HTTP2-Settings`` (no ACK),
        send our preface, and open stream 1 half-closed (remote): the upgraded request.

        Raises ValueError for a bad ``HTTP2-Settings`` value (the request is then served as HTTP/1.1).
        """
        try:
            payload = base64.b64decode(settings_header + b"=" * (-len(settings_header) % 4), altchars=b"-_",
                                       validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"invalid HTTP2-Settings: {exc}") from None
        if len(payload) % 6:
            raise ValueError("invalid HTTP2-Settings length")
        try:
            self._apply_settings(payload)
        except H2ConnectionError as exc:
            raise ValueError(exc.reason) from None
        self.out.clear()  # no SETTINGS ACK for HTTP2-Settings
        self.dead = False
        self.initiate()
        self.highest = 1
        self.streams[1] = _Stream(self.recv_initial_window, self.send_initial_window, -1, True)

    # -- receiving -----------------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        """Process received bytes (any split). Raises :class:`H2ConnectionError` on a connection error."""
        if self.dead:
            return
        if self.buf:
            if len(self.buf) + len(data) < self.need:
                self.buf += data  # a bytearray: a big frame arriving in pieces is not copied quadratically
                return
            data = bytes(self.buf) + data
            self.buf = b""
        if self.preface_left:
            data = self._preface(data)
            if not data:
                return
        n = len(data)
        pos = 0
        while n - pos >= 9:
            lt, flags, sid = _unpack_frame(data, pos)
            length = lt >> 8
            if length > self.recv_max_frame:
                self._oversized(lt & 0xFF, sid & 0x7FFFFFFF, length)
            end = pos + 9 + length
            if end > n:
                break
            ftype = lt & 0xFF
            sid &= 0x7FFFFFFF
            start = pos + 9
            pos = end
            if self.hb_sid and ftype != CONTINUATION:
                self._fail(PROTOCOL_ERROR, "header block interrupted by another frame")
            if not self.settings_seen and ftype != SETTINGS:
                self._fail(PROTOCOL_ERROR, "the client preface must start with a SETTINGS frame")
            if ftype < 10:  # unknown frame types are ignored (RFC 9113 section 5.5)
                _FRAME_HANDLERS[ftype](self, data, start, end, flags, sid)
            if self.dead:
                return
        if pos < n:
            rest = data[pos:]
            self.buf = bytearray(rest)
            self.need = 9 + (int.from_bytes(rest[:3], "big") if len(rest) >= 9 else 0)

    # -- one method per frame type: (data, start, end) is the payload, as received ----------------------
    def _headers_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        if not sid:
            self._fail(PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & (PADDED | PRIORITY_FLAG):
            start, end = self._headers_extras(data, start, end, flags, sid)
        if flags & END_HEADERS:
            self._header_block(sid, data[start:end], flags & END_STREAM)
        else:
            self.hb_sid = sid
            self.hb_parts = [data[start:end]]
            self.hb_end = bool(flags & END_STREAM)
            self.hb_size = end - start

    def _data_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        if not sid:
            self._fail(PROTOCOL_ERROR, "DATA on stream 0")
        size = length = end - start
        if flags & PADDED:
            if not length:
                self._fail(FRAME_SIZE_ERROR, "padded DATA frame without a pad length")
            pad = data[start]
            if pad >= length:
                self._fail(PROTOCOL_ERROR, "DATA padding exceeds the frame payload")
            start += 1
            end -= pad
        recv = self.recv_window - size
        if recv < 0:
            self._fail(FLOW_CONTROL_ERROR, "DATA exceeds the connection flow-control window")
        self.recv_window = recv
        stream = self.streams.get(sid)
        if stream is None or stream.remote_closed:
            self._data_not_open(sid, stream, size)
            return
        window = stream.recv_window - size
        if window < 0:
            self._fail(FLOW_CONTROL_ERROR, f"DATA exceeds the flow-control window of stream {sid}")
        stream.recv_window = window
        got = stream.received + end - start
        stream.received = got
        ended = flags & END_STREAM
        if stream.length >= 0 and (got > stream.length or (ended and got != stream.length)):
            self.reset_stream(sid, PROTOCOL_ERROR)  # RFC 9113 section 8.1.1: malformed
            self.ack(sid, size)
            self.on_reset(sid, PROTOCOL_ERROR, False)
            self.on_control()
            return
        if ended:
            stream.remote_closed = True
            if stream.local_closed:
                self._closed(sid, _ENDED)
        elif not size:
            self.on_control()  # an empty DATA frame: a flood vector
        self.on_data(sid, data[start:end], size, bool(ended))

    def _rst_stream_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        if not sid:
            self._fail(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if end - start != 4:
            self._fail(FRAME_SIZE_ERROR, "RST_STREAM payload must be 4 bytes")
        if sid > self.highest:
            self._fail(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
        if self.streams.pop(sid, None) is not None:
            self._remember(sid, _RESET_RECEIVED)
            self.on_reset(sid, _unpack_u32(data, start)[0], True)

    def _ping_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        if sid:
            self._fail(PROTOCOL_ERROR, "PING on a stream")
        if end - start != 8:
            self._fail(FRAME_SIZE_ERROR, "PING payload must be 8 bytes")
        if flags & ACK:
            self.on_ping_ack(data[start:end])
        else:
            self.out.append(frame(PING, ACK, 0, data[start:end]))
            self.on_control()

    def _priority_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        if not sid:
            self._fail(PROTOCOL_ERROR, "PRIORITY on stream 0")
        if end - start != 5:
            self._fail(FRAME_SIZE_ERROR, "PRIORITY payload must be 5 bytes")
        if _unpack_u32(data, start)[0] & 0x7FFFFFFF == sid:
            self._fail(PROTOCOL_ERROR, f"stream {sid} depends on itself")
        self.on_control()  # priorities are ignored (RFC 9113 section 5.3.2)

    def _goaway_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        if sid:
            self._fail(PROTOCOL_ERROR, "GOAWAY on a stream")
        if end - start < 8:
            self._fail(FRAME_SIZE_ERROR, "GOAWAY payload must be at least 8 bytes")
        last, code = _U32x2.unpack_from(data, start)
        self.on_goaway(code, last & 0x7FFFFFFF)

    def _push_promise_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        if end - start < (5 if flags & PADDED else 4):
            self._fail(FRAME_SIZE_ERROR, "PUSH_PROMISE too short")
        self._fail(PROTOCOL_ERROR, "clients cannot push (PUSH_PROMISE)")

    def _oversized(self, ftype: int, sid: int, length: int) -> NoReturn:
        """A frame above SETTINGS_MAX_FRAME_SIZE (seen from its header: the body is not waited for);
        a frame on the wrong kind of stream is reported as that, first, like h2 does."""
        if (not sid and ftype in _STREAM_FRAMES) or (sid and ftype in _CONNECTION_FRAMES):
            self._fail(PROTOCOL_ERROR, f"frame type {ftype} on stream {sid}")
        self._fail(FRAME_SIZE_ERROR, f"frame of {length} bytes exceeds SETTINGS_MAX_FRAME_SIZE")

    def _preface(self, data: bytes) -> bytes:
        want = self.preface_left
        got = data[:len(want)]
        if want[:len(got)] != got:
            self.preface_left = b""
            self._fail(PROTOCOL_ERROR, "invalid HTTP/2 connection preface")
        self.preface_left = want[len(got):]
        return data[len(got):]

    def _headers_extras(self, data: bytes, start: int, end: int, flags: int, sid: int) -> tuple[int, int]:
        """Strip the padding and the priority fields of a HEADERS frame."""
        pad = 0
        if flags & PADDED:
            if end == start:
                self._fail(FRAME_SIZE_ERROR, "padded HEADERS frame without a pad length")
            pad = data[start]
            start += 1
            if pad and pad >= end - start:
                self._fail(PROTOCOL_ERROR, "HEADERS padding exceeds the frame payload")
        if flags & PRIORITY_FLAG:
            if end - start < 5:
                self._fail(FRAME_SIZE_ERROR, "HEADERS priority fields missing")
            if _unpack_u32(data, start)[0] & 0x7FFFFFFF == sid:
                self.self_dependency = True  # a connection error once the block is decoded (like h2)
            start += 5
        end -= pad
        if end < start:
            self._fail(PROTOCOL_ERROR, "HEADERS padding exceeds the header block fragment")
        return start, end

    def _continuation_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        if not self.hb_sid or sid != self.hb_sid:
            self._fail(PROTOCOL_ERROR, "CONTINUATION without a header block in progress on that stream")
        parts = self.hb_parts
        parts.append(data[start:end])
        self.hb_size += end - start
        if len(parts) > MAX_CONTINUATIONS:
            self._fail(PROTOCOL_ERROR, "too many CONTINUATION frames")
        if self.hb_size > self.max_header_list_size + 65536:
            self._fail(ENHANCE_YOUR_CALM, "header block larger than SETTINGS_MAX_HEADER_LIST_SIZE allows")
        if flags & END_HEADERS:
            self.hb_sid = 0
            self.hb_parts = []
            self._header_block(sid, b"".join(parts), self.hb_end)

    def _decode(self, block: bytes) -> HeaderBlock:
        """hpack-decode a header block, memoised while it leaves the dynamic table unchanged."""
        entry = self.blocks.get(block)
        if entry is not None:
            return entry
        decoder = self.decoder
        table = decoder.header_table
        entries = table.dynamic_entries
        count = len(entries)
        first = entries[0] if count else None
        size = table.maxsize
        try:
            headers = decoder.decode(block, raw=True)
        except OversizedHeaderListError:
            self._fail(ENHANCE_YOUR_CALM, "header list larger than SETTINGS_MAX_HEADER_LIST_SIZE")
        except (HPACKError, IndexError, TypeError, ValueError, UnicodeDecodeError) as exc:
            self._fail(COMPRESSION_ERROR, f"HPACK decoding error: {exc}")
        entry = HeaderBlock(headers)  # type: ignore[arg-type]
        blocks = self.blocks
        if len(entries) == count and (not count or entries[0] is first) and table.maxsize == size:
            # memoised only while small (a few table references can decode to kilobytes): the memo
            # costs at most MEMO_BLOCKS x MEMO_BLOCK_BYTES per connection
            if len(block) <= MEMO_BLOCK_BYTES and sum([len(n) + len(v) for n, v in headers]) <= MEMO_BLOCK_BYTES:
                if len(blocks) >= MEMO_BLOCKS:
                    blocks.clear()
                blocks[block] = entry
        elif blocks:
            blocks.clear()  # the table changed: memoised blocks may now decode differently
        return entry

    def _header_block(self, sid: int, block: bytes, end: int | bool) -> None:
        entry = self._decode(block)  # always decoded: the HPACK state is shared by the connection
        self_dependency = self.self_dependency
        self.self_dependency = False
        stream = self.streams.get(sid)
        if stream is None:
            if sid > self.highest:
                if not sid & 1:
                    self._fail(PROTOCOL_ERROR, "clients must use odd stream ids")
                self.highest = sid
                if self_dependency:
                    self._fail(PROTOCOL_ERROR, f"stream {sid} depends on itself")
                if len(self.streams) >= self.max_streams:
                    self.out.append(frame(RST_STREAM, 0, sid, _U32.pack(REFUSED_STREAM)))
                    self._remember(sid, _RESET_SENT)
                    self.on_control()
                    return
                length = entry.length
                if end and length > 0:  # content-length promised but END_STREAM already (section 8.1.1)
                    self.out.append(frame(RST_STREAM, 0, sid, _U32.pack(PROTOCOL_ERROR)))
                    self._remember(sid, _RESET_SENT)
                    self.on_control()
                    return
                self.streams[sid] = _Stream(self.recv_initial_window, self.send_initial_window, length, bool(end))
                self.on_request(sid, entry, bool(end))
                return
            how = self.closed.get(sid)
            if how == _RESET_SENT:
                return  # RFC 9113 section 5.1: frames after our RST_STREAM are ignored
            if how == _RESET_RECEIVED:
                self.out.append(frame(RST_STREAM, 0, sid, _U32.pack(STREAM_CLOSED)))
                self.on_control()
                return
            if how == _ENDED:
                self._fail(STREAM_CLOSED, f"HEADERS on closed stream {sid}")
            self._fail(PROTOCOL_ERROR, f"HEADERS on stream {sid}, lower than a stream already opened")
        if stream.remote_closed:  # half-closed (remote): stream error STREAM_CLOSED
            self._stream_error(sid, STREAM_CLOSED)
            return
        if self_dependency:
            self._fail(PROTOCOL_ERROR, f"stream {sid} depends on itself")
        if not end:  # a second HEADERS must be trailers and end the stream (section 8.1)
            self._stream_error(sid, PROTOCOL_ERROR)
            return
        if stream.length >= 0 and stream.received != stream.length:
            self._stream_error(sid, PROTOCOL_ERROR)
            return
        stream.remote_closed = True
        if stream.local_closed:
            self._closed(sid, _ENDED)
        self.on_trailers(sid, entry.headers)

    def _data_not_open(self, sid: int, stream: _Stream | None, size: int) -> None:
        """DATA on a stream that is not open for receiving: idle, half-closed (remote) or closed."""
        if stream is None and sid > self.highest:
            self._fail(PROTOCOL_ERROR, f"DATA on idle stream {sid}")
        self.ack(0, size)  # it still counted against the connection window
        if stream is not None:
            self._stream_error(sid, STREAM_CLOSED)
        elif self.closed.get(sid) != _RESET_SENT:
            self.out.append(frame(RST_STREAM, 0, sid, _U32.pack(STREAM_CLOSED)))
            self.on_control()

    def _stream_error(self, sid: int, code: int) -> None:
        """A stream error on an open stream: RST_STREAM, and tell the handler."""
        self.reset_stream(sid, code)
        self.on_reset(sid, code, False)
        self.on_control()

    def _window_update_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        if end - start != 4:
            self._fail(FRAME_SIZE_ERROR, "WINDOW_UPDATE payload must be 4 bytes")
        increment = _unpack_u32(data, start)[0] & 0x7FFFFFFF
        if not increment:
            self._fail(PROTOCOL_ERROR, "WINDOW_UPDATE with a zero increment")
        if not sid:
            window = self.send_window + increment
            if window > MAX_WINDOW:
                self._fail(FLOW_CONTROL_ERROR, "connection flow-control window above 2^31-1")
            self.send_window = window
            self.on_window(0)
            return
        stream = self.streams.get(sid)
        if stream is None:
            if sid > self.highest:
                self._fail(PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
            return  # closed: ignored
        window = stream.send_window + increment
        if window > MAX_WINDOW:
            self._stream_error(sid, FLOW_CONTROL_ERROR)
            return
        stream.send_window = window
        self.on_window(sid)

    def _settings_frame(self, data: bytes, start: int, end: int, flags: int, sid: int) -> None:
        length = end - start
        if sid:
            self._fail(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if length:
                self._fail(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            if self.pending_settings:
                self._settings_acked(self.pending_settings.pop(0))
            return
        if length % 6:
            self._fail(FRAME_SIZE_ERROR, "SETTINGS payload must be a multiple of 6 bytes")
        self.settings_seen = True
        changed = self._apply_settings(data[start:start + length])
        self.out.append(frame(SETTINGS, ACK, 0))
        self.on_settings(changed)
        self.on_control()

    def _apply_settings(self, payload: bytes) -> dict[int, int]:
        """Validate, then apply, the peer's settings (RFC 9113 section 6.5.2)."""
        values = [_SETTING.unpack_from(payload, i) for i in range(0, len(payload), 6)]
        for key, value in values:
            if key == INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
                self._fail(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1")
            if key == MAX_FRAME_SIZE and not DEFAULT_MAX_FRAME <= value <= 16777215:
                self._fail(PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
            if (key == ENABLE_PUSH or key == ENABLE_CONNECT_PROTOCOL) and value > 1:
                self._fail(PROTOCOL_ERROR, f"setting {key} must be 0 or 1")
        changed: dict[int, int] = {}
        for key, value in values:
            if key == INITIAL_WINDOW_SIZE:
                delta = value - self.send_initial_window
                self.send_initial_window = value
                if delta:
                    for stream in self.streams.values():
                        stream.send_window += delta
                        if stream.send_window > MAX_WINDOW:
                            self._fail(FLOW_CONTROL_ERROR, "a stream flow-control window grew above 2^31-1")
            elif key == MAX_FRAME_SIZE:
                self.max_send_frame = value
            self.peer_settings[key] = value
            changed[key] = value
        return changed

    def _settings_acked(self, settings: dict[int, int]) -> None:
        """Our SETTINGS are in force from the peer's ACK on."""
        value = settings.get(INITIAL_WINDOW_SIZE)
        if value is not None:
            delta = value - self.recv_initial_window
            self.recv_initial_window = value
            if delta:
                for stream in self.streams.values():
                    stream.recv_window += delta
                    stream.recv_max += delta
        value = settings.get(MAX_FRAME_SIZE)
        if value is not None:
            self.recv_max_frame = value

    def _fail(self, code: int, reason: str) -> NoReturn:
        """A connection error: queue GOAWAY and raise."""
        if not self.dead:
            self.dead = True
            self.out.append(frame(GOAWAY, 0, 0, _U32x2.pack(self.highest, code)))
        raise H2ConnectionError(code, reason)

    def _remember(self, sid: int, how: int) -> None:
        closed = self.closed
        closed[sid] = how
        if len(closed) > 2 * CLOSED_MEMORY:  # keep the newest (amortised: one rebuild per CLOSED_MEMORY)
            self.closed = dict(list(closed.items())[-CLOSED_MEMORY:])

    def _closed(self, sid: int, how: int) -> None:
        del self.streams[sid]
        self._remember(sid, how)

    # -- sending -------------------------------------------------------------------------------------
    def window(self, sid: int) -> int:
        """How much DATA may be sent on stream ``sid`` now (0 when it cannot send)."""
        stream = self.streams.get(sid)
        if stream is None or stream.local_closed:
            return 0
        window = stream.send_window
        return window if window < self.send_window else self.send_window

    def is_open(self, sid: int) -> bool:
        stream = self.streams.get(sid)
        return stream is not None and not stream.local_closed

    def send_headers(self, sid: int, block: bytes, end: bool = False) -> bool:
        """A HEADERS frame (plus CONTINUATION frames for a big block); False when the stream is gone."""
        stream = self.streams.get(sid)
        if stream is None or stream.local_closed:
            return False
        if self.header_prefix:
            block = self.header_prefix + block
            self.header_prefix = b""
        self.out.append(self._headers_frames(sid, block, end))
        if end:
            self._local_end(sid, stream)
        return True

    def _headers_frames(self, sid: int, block: bytes, end: bool) -> bytes:
        limit = self.max_send_frame
        if len(block) <= limit:
            return _pack_frame(len(block) << 8 | HEADERS, END_HEADERS | END_STREAM if end else END_HEADERS,
                               sid) + block
        parts = [frame(HEADERS, END_STREAM if end else 0, sid, block[:limit])]
        for i in range(limit, len(block), limit):
            chunk = block[i:i + limit]
            parts.append(frame(CONTINUATION, END_HEADERS if i + limit >= len(block) else 0, sid, chunk))
        return b"".join(parts)

    def send_response(self, sid: int, block: bytes, body: bytes, end: bool) -> int:
        """HEADERS and, when it fits the windows and one frame, DATA with ``body``, as one write.
        Returns -1 when the stream is gone, else how many body bytes were sent (all or none)."""
        stream = self.streams.get(sid)
        if stream is None or stream.local_closed:
            return -1
        if self.header_prefix:
            block = self.header_prefix + block
            self.header_prefix = b""
        size = len(body)
        if not size:
            self.out.append(self._headers_frames(sid, block, end))
            if end:
                self._local_end(sid, stream)
            return 0
        window = stream.send_window
        if size > window or size > self.send_window or size > self.max_send_frame:
            self.out.append(self._headers_frames(sid, block, False))
            return 0
        stream.send_window = window - size
        self.send_window -= size
        if len(block) <= self.max_send_frame:
            self.out.append(_pack_frame(len(block) << 8 | HEADERS, END_HEADERS, sid) + block
                            + _pack_frame(size << 8, END_STREAM if end else 0, sid) + body)
        else:
            self.out.append(self._headers_frames(sid, block, False) + _pack_frame(size << 8, END_STREAM if end else 0,
                                                                                  sid) + body)
        if end:
            self._local_end(sid, stream)
        return size

    def send_data(self, sid: int, data: Any, end: bool = False) -> bool:
        """One DATA frame; the caller keeps ``len(data)`` within :meth:`window` and
        :attr:`max_send_frame`. False when the stream is gone."""
        stream = self.streams.get(sid)
        if stream is None or stream.local_closed:
            return False
        size = len(data)
        if size:
            stream.send_window -= size
            self.send_window -= size
            self.out.append(_pack_frame(size << 8, END_STREAM if end else 0, sid))
            self.out.append(data if type(data) is bytes else bytes(data))
        else:
            self.out.append(_pack_frame(0, END_STREAM if end else 0, sid))
        if end:
            self._local_end(sid, stream)
        return True

    def _local_end(self, sid: int, stream: _Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            self._closed(sid, _ENDED)

    def reset_stream(self, sid: int, code: int) -> None:
        """RST_STREAM for an open stream (no-op when it is already closed)."""
        if self.streams.pop(sid, None) is not None:
            self.out.append(frame(RST_STREAM, 0, sid, _U32.pack(code)))
            self._remember(sid, _RESET_SENT)

    def ack(self, sid: int, size: int) -> None:
        """The application consumed ``size`` flow-controlled bytes of stream ``sid`` (0: only the
        connection): give them back to the peer with WINDOW_UPDATE, batched (at half a window)."""
        if size <= 0:
            return
        unacked = self.recv_unacked + size
        window = self.recv_window
        if unacked >= self.recv_max >> 1 or (not window and unacked > min(1024, self.recv_max >> 2)):
            increment = min(unacked, self.recv_max - window)
            self.recv_unacked = 0
            if increment > 0:
                self.recv_window = window + increment
                self.out.append(_pack_frame(4 << 8 | WINDOW_UPDATE, 0, 0) + _U32.pack(increment))
        else:
            self.recv_unacked = unacked
        if sid:
            self.ack_stream(sid, size)

    def ack_stream(self, sid: int, size: int) -> None:
        """Like :meth:`ack`, for the window of stream ``sid`` only (the connection's share of these bytes
        was given back already, with ``ack(0, size)``)."""
        stream = self.streams.get(sid)
        if stream is None or stream.remote_closed or size <= 0:
            return  # no more data can come on it
        unacked = stream.recv_unacked + size
        window = stream.recv_window
        if unacked >= stream.recv_max >> 1 or (window <= 0 and unacked > min(1024, stream.recv_max >> 2)):
            increment = min(unacked, stream.recv_max - window)
            stream.recv_unacked = 0
            if increment > 0:
                stream.recv_window = window + increment
                self.out.append(_pack_frame(4 << 8 | WINDOW_UPDATE, 0, sid) + _U32.pack(increment))
        else:
            stream.recv_unacked = unacked

    def increment_connection_window(self, increment: int) -> None:
        """Grow the connection receive window (WINDOW_UPDATE on stream 0)."""
        increment = min(increment, MAX_WINDOW - self.recv_window)
        if increment > 0:
            self.recv_window += increment
            self.recv_max += increment
            self.out.append(frame(WINDOW_UPDATE, 0, 0, _U32.pack(increment)))

    def update_initial_window(self, value: int) -> None:
        """Announce a new SETTINGS_INITIAL_WINDOW_SIZE (in force for us once the peer ACKs it)."""
        settings = {INITIAL_WINDOW_SIZE: value}
        self.local_settings[INITIAL_WINDOW_SIZE] = value
        self.pending_settings.append(settings)
        self.out.append(frame(SETTINGS, 0, 0, _SETTING.pack(INITIAL_WINDOW_SIZE, value)))

    def ping(self, data: bytes) -> None:
        self.out.append(frame(PING, 0, 0, data[:8].ljust(8, b"\0")))

    def goaway(self, code: int = NO_ERROR, last_stream_id: int | None = None) -> None:
        """GOAWAY: no new streams from the peer; streams up to ``last_stream_id`` (default: the
        highest opened) may finish. A non-zero ``code`` ends the connection."""
        self.goaway_sent = True
        last = self.highest if last_stream_id is None else last_stream_id
        self.out.append(frame(GOAWAY, 0, 0, _U32x2.pack(last, code)))
        if code:
            self.dead = True

    def data_to_send(self) -> bytes:
        out = self.out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data


# receive() calls the method for a frame's type (DATA=0 ... CONTINUATION=9) with its payload
_FRAME_HANDLERS = (
    H2ServerConnection._data_frame,
    H2ServerConnection._headers_frame,
    H2ServerConnection._priority_frame,
    H2ServerConnection._rst_stream_frame,
    H2ServerConnection._settings_frame,
    H2ServerConnection._push_promise_frame,
    H2ServerConnection._ping_frame,
    H2ServerConnection._goaway_frame,
    H2ServerConnection._window_update_frame,
    H2ServerConnection._continuation_frame,
)
