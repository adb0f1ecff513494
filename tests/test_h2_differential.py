"""Differential test: our HTTP/2 server connection (``protocol/h2conn.py``) against the ``h2`` library.

The same client byte sequences (valid requests with and without bodies, padding, CONTINUATION,
trailers, priorities, settings changes, window updates, resets, pings, and malicious ones) are fed to
an ``h2`` server connection (the reference, configured like our old production server: header
validation off) and to ours, and what each reports is normalised and compared:

* events: requests (decoded headers, END_STREAM), body data, ends, trailers, resets (by the peer or
  as stream errors), window updates, settings, ping ACKs, GOAWAY from the peer;
* frames written back: RST_STREAM, GOAWAY, WINDOW_UPDATE, SETTINGS ACK, PING ACK (HEADERS only by
  type/flags/stream: the two HPACK encoders differ);
* the connection error (its GOAWAY code), if any.

Ours is also fed every sequence split at every byte boundary and one byte at a time, and must
report exactly what it reports for whole frames. Intentional differences from h2 are listed in
:data:`STRICTER_THAN_H2` and :data:`MORE_LENIENT_THAN_H2`, each with its RFC section and what we
do instead; a hypothesis fuzz drives both with random frame sequences and accepts a divergence only
when one of those entries explains it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Callable

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest
from h2.settings import SettingCodes
from hpack import Encoder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_granian.protocol import h2conn as C

MAX_STREAMS = 4
WINDOW = 65535
CONN_WINDOW = 131072
MAX_HEADER_LIST = 8192
OPTIONS = {"max_concurrent_streams": MAX_STREAMS, "initial_window_size": WINDOW, "max_frame_size": 16384,
           "max_header_list_size": MAX_HEADER_LIST, "connection_window": CONN_WINDOW}
RESPONSE = [(b":status", b"200")]

DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WU, CONT = range(10)
ES, EH, PAD, PRIO = 0x1, 0x4, 0x8, 0x20


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def setting(key: int, value: int) -> bytes:
    return struct.pack(">HI", key, value)


def u32(value: int) -> bytes:
    return struct.pack(">I", value)


# -- the two servers ----------------------------------------------------------------------------

@dataclass
class Outcome:
    events: list = field(default_factory=list)  # (frame index, event)
    out: list = field(default_factory=list)  # (frame index, frame written back)
    error: tuple[int, int] | None = None  # (frame index, code)
    reason: str = ""

    def plain(self) -> tuple:
        return ([e for _, e in self.events], [f for _, f in self.out], self.error[1] if self.error else None)


def parse_out(data: bytes) -> list[tuple]:
    frames = []
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        payload = data[pos + 9:pos + 9 + length]
        pos += 9 + length
        if ftype == HEADERS or ftype == CONT or ftype == DATA:
            frames.append((ftype, flags, sid))
        elif ftype == GOAWAY:
            frames.append((GOAWAY, *struct.unpack(">II", payload[:8])))
        elif ftype == SETTINGS:
            frames.append((SETTINGS, flags, payload))
        else:
            frames.append((ftype, flags, sid, payload))
    return frames


@dataclass
class Mode:
    ack: bool = True  # the application consumes request data at once (WINDOW_UPDATEs go out)
    respond: bool = False  # answer each request when it has ended (the stream then closes)
    early: bool = False  # answer at once, resetting a request body in progress with NO_ERROR


def run_h2(frames: list[bytes], mode: Mode) -> Outcome:
    config = h2.config.H2Configuration(client_side=False, header_encoding=None, validate_inbound_headers=False,
                                       normalize_inbound_headers=False, validate_outbound_headers=False,
                                       normalize_outbound_headers=False)
    conn = h2.connection.H2Connection(config)
    conn.initiate_connection()
    conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: MAX_STREAMS,
                          SettingCodes.INITIAL_WINDOW_SIZE: WINDOW, SettingCodes.MAX_FRAME_SIZE: 16384,
                          SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST})
    conn.increment_flow_control_window(CONN_WINDOW - 65535)
    conn.data_to_send()
    outcome = Outcome()
    ended: set[int] = set()

    def respond(sid: int) -> None:
        try:
            conn.send_headers(sid, RESPONSE, end_stream=True)
            if mode.early and sid not in ended:
                conn.reset_stream(sid, 0)
        except h2.exceptions.ProtocolError:
            pass

    for index, chunk in enumerate(frames):
        try:
            events = conn.receive_data(chunk)
        except h2.exceptions.ProtocolError as exc:
            out = parse_out(conn.data_to_send())
            outcome.out += [(index, f) for f in out]
            goaway = [f for f in out if f[0] == GOAWAY]
            outcome.error = (index, goaway[-1][2] if goaway else int(exc.error_code))
            break
        for event in events:
            kind = type(event)
            sid = getattr(event, "stream_id", None)
            if kind is h2.events.RequestReceived:
                done = event.stream_ended is not None
                if done:
                    ended.add(sid)
                outcome.events.append((index, ("request", sid, tuple(map(tuple, event.headers)), done)))
                if mode.early or (mode.respond and done):
                    respond(sid)
            elif kind is h2.events.DataReceived:
                outcome.events.append((index, ("data", sid, event.data)))
                if mode.ack:
                    try:
                        conn.acknowledge_received_data(event.flow_controlled_length, sid)
                    except h2.exceptions.ProtocolError:
                        pass
            elif kind is h2.events.TrailersReceived:
                outcome.events.append((index, ("trailers", sid, tuple(map(tuple, event.headers)))))
            elif kind is h2.events.StreamEnded:
                if any(e == ("request", sid, e[2], True) for _, e in outcome.events if e[0] == "request"
                       and e[1] == sid):
                    continue  # reported with the request
                ended.add(sid)
                outcome.events.append((index, ("end", sid)))
                if mode.respond and not mode.early:
                    respond(sid)
            elif kind is h2.events.StreamReset:
                outcome.events.append((index, ("reset", sid, int(event.error_code), event.remote_reset)))
            elif kind is h2.events.WindowUpdated:
                outcome.events.append((index, ("window", sid)))
            elif kind is h2.events.RemoteSettingsChanged:
                changed = {int(k): v.new_value for k, v in event.changed_settings.items()}
                outcome.events.append((index, ("settings", changed)))
            elif kind is h2.events.PingAckReceived:
                outcome.events.append((index, ("ping-ack", event.ping_data)))
            elif kind is h2.events.ConnectionTerminated:
                outcome.events.append((index, ("goaway", int(event.error_code), event.last_stream_id)))
        outcome.out += [(index, f) for f in parse_out(conn.data_to_send())]
    return outcome


class Recorder:
    """The handler of our connection, recording normalised events."""

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.events: list = []
        self.conn: C.H2ServerConnection = None  # type: ignore[assignment]
        self.index = 0
        self.ended: set[int] = set()

    def _respond(self, sid: int) -> None:
        self.conn.send_headers(sid, b"\x88", end=True)
        if self.mode.early and sid not in self.ended:
            self.conn.reset_stream(sid, 0)

    def h2_request(self, sid, block, end):
        self.events.append((self.index, ("request", sid, tuple(map(tuple, block.headers)), end)))
        if end:
            self.ended.add(sid)
        if self.mode.early or (self.mode.respond and end):
            self._respond(sid)

    def h2_data(self, sid, data, size, end):
        self.events.append((self.index, ("data", sid, data)))
        if self.mode.ack:
            self.conn.ack(sid, size)
        if end:
            self.ended.add(sid)
            self.events.append((self.index, ("end", sid)))
            if self.mode.respond and not self.mode.early:
                self._respond(sid)

    def h2_trailers(self, sid, headers):
        self.ended.add(sid)
        self.events.append((self.index, ("trailers", sid, tuple(map(tuple, headers)))))
        self.events.append((self.index, ("end", sid)))
        if self.mode.respond and not self.mode.early:
            self._respond(sid)

    def h2_reset(self, sid, code, remote):
        self.events.append((self.index, ("reset", sid, code, remote)))

    def h2_window(self, sid):
        self.events.append((self.index, ("window", sid)))

    def h2_settings(self, changed):
        self.events.append((self.index, ("settings", dict(changed))))

    def h2_ping_ack(self, data):
        self.events.append((self.index, ("ping-ack", data)))

    def h2_goaway(self, code, last):
        self.events.append((self.index, ("goaway", code, last)))

    def h2_control(self):
        pass


def run_ours(chunks: list[bytes], mode: Mode, per_frame: bool = True) -> Outcome:
    recorder = Recorder(mode)
    conn = C.H2ServerConnection(recorder, **OPTIONS)
    recorder.conn = conn
    conn.initiate()
    conn.data_to_send()
    outcome = Outcome()
    for index, chunk in enumerate(chunks):
        recorder.index = index
        try:
            conn.receive(chunk)
        except C.H2ConnectionError as exc:
            outcome.error = (index, exc.code)
            outcome.reason = exc.reason
        outcome.out += [(index, f) for f in parse_out(conn.data_to_send())]
        if outcome.error:
            break
    outcome.events = recorder.events
    if not per_frame:
        outcome.events = [(0, e) for _, e in outcome.events]
        outcome.out = [(0, f) for _, f in outcome.out]
        if outcome.error:
            outcome.error = (0, outcome.error[1])
    return outcome


# -- the corpus ---------------------------------------------------------------------------------

class Client:
    """Builds client frames; one HPACK encoder per sequence, like a real client."""

    def __init__(self) -> None:
        self.encoder = Encoder()

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        return self.encoder.encode(headers)

    def headers(self, sid: int, headers=None, end: bool = True, pad: int | None = None,
                priority: tuple[int, int] | None = None, split: int = 0, path: bytes = b"/") -> list[bytes]:
        if headers is None:
            headers = req(path=path)
        block = self.block(headers)
        flags = ES if end else 0
        prefix = b""
        if priority is not None:
            flags |= PRIO
            prefix = u32(priority[0]) + bytes([priority[1]])
        pieces = [block]
        if split:
            pieces = [block[i:i + split] for i in range(0, len(block), split)] or [b""]
        first = prefix + pieces[0]
        if pad is not None:
            flags |= PAD
            first = bytes([pad]) + first + b"\0" * pad
        if len(pieces) == 1:
            return [frame(HEADERS, flags | EH, sid, first)]
        out = [frame(HEADERS, flags, sid, first)]
        for i, piece in enumerate(pieces[1:], 1):
            out.append(frame(CONT, EH if i == len(pieces) - 1 else 0, sid, piece))
        return out


def req(method: bytes = b"GET", path: bytes = b"/", extra=()) -> list[tuple[bytes, bytes]]:
    return [(b":method", method), (b":scheme", b"http"), (b":path", path), (b":authority", b"example.com"),
            *extra]


def data(sid: int, payload: bytes, end: bool = False, pad: int | None = None) -> bytes:
    if pad is None:
        return frame(DATA, ES if end else 0, sid, payload)
    return frame(DATA, (ES if end else 0) | PAD, sid, bytes([pad]) + payload + b"\0" * pad)


PROLOGUE = [C.PREFACE, frame(SETTINGS, 0, 0, setting(C.HEADER_TABLE_SIZE, 4096)), frame(SETTINGS, 1, 0),
            frame(SETTINGS, 1, 0)]  # h2 sends two SETTINGS (defaults, then ours): ACK both


def case(build: Callable[[Client], list], mode: Mode | None = None, prologue: bool = True):
    def make() -> tuple[list[bytes], Mode]:
        frames: list[bytes] = list(PROLOGUE) if prologue else []
        for item in build(Client()):
            frames.extend(item if isinstance(item, list) else [item])
        return frames, mode or Mode()
    return make


LONG = b"x" * 3000
CASES: dict[str, Any] = {
    # valid
    "get": case(lambda c: [c.headers(1)]),
    "post_with_length": case(lambda c: [c.headers(1, req(b"POST", extra=[(b"content-length", b"10")]), end=False),
                                        data(1, b"hello"), data(1, b"world", end=True)]),
    "post_without_length": case(lambda c: [c.headers(1, req(b"POST"), end=False), data(1, b"abc"),
                                           data(1, b"", end=True)]),
    "padding": case(lambda c: [c.headers(1, req(b"POST"), end=False, pad=10), data(1, b"abc", pad=3),
                               data(1, b"", end=True, pad=0), c.headers(3, pad=0)]),
    "continuation": case(lambda c: [c.headers(1, req(extra=[(b"x-long", LONG)]), split=7),
                                    c.headers(3, end=False, split=1), data(3, b"", end=True)]),
    "trailers": case(lambda c: [c.headers(1, req(b"POST"), end=False), data(1, b"body"),
                                c.headers(3), c.headers(1, [(b"x-checksum", b"1")], end=True)]),
    "priority": case(lambda c: [frame(PRIORITY, 0, 3, u32(0) + b"\x10"), c.headers(1, priority=(0, 16)),
                                c.headers(3, priority=(0x80000001, 200)), frame(PRIORITY, 0, 1, u32(3) + b"\x01"),
                                frame(PRIORITY, 0, 9, u32(1) + b"\x01")]),
    "settings_change": case(lambda c: [c.headers(1, end=False),
                                       frame(SETTINGS, 0, 0, setting(4, 1000) + setting(5, 20000) + setting(1, 0)
                                             + setting(2, 0) + setting(0x99, 7) + setting(6, 100)
                                             + setting(8, 1)),
                                       c.headers(3), frame(SETTINGS, 0, 0, setting(4, 70000))]),
    "window_updates": case(lambda c: [frame(WU, 0, 0, u32(1000)), c.headers(1, end=False),
                                      frame(WU, 0, 1, u32(5000)), frame(WU, 0, 1, u32(7))]),
    "client_reset": case(lambda c: [c.headers(1, end=False), frame(RST, 0, 1, u32(8)), c.headers(3),
                                    frame(RST, 0, 3, u32(0))]),
    "pings": case(lambda c: [frame(PING, 0, 0, b"12345678"), frame(PING, 1, 0, b"ackack!!"),
                             c.headers(1), frame(PING, 0, 0, b"\0" * 8)]),
    "respond_many_streams": case(lambda c: [c.headers(sid) for sid in range(1, 40, 2)], Mode(respond=True)),
    "hpack_table": case(lambda c: [c.headers(1, req(extra=[(b"x-a", b"1")])), c.headers(3, req(extra=[(b"x-a", b"2")])),
                                   c.headers(5, req(extra=[(b"x-a", b"2")])), c.headers(7, path=b"/other")],
                        Mode(respond=True)),
    "hpack_size_update": case(lambda c: [c.headers(1), [frame(HEADERS, ES | EH, 3, b"\x20\x3f\xe1\x1f"
                                                              + Encoder().encode(req()))]],
                              Mode(respond=True)),
    "unknown_frames": case(lambda c: [frame(0x20, 0xFF, 0, b"ext"), c.headers(1, end=False),
                                      frame(0xFA, 0, 1, b"x" * 100), data(1, b"", end=True)]),
    "client_goaway": case(lambda c: [c.headers(1), frame(GOAWAY, 0, 0, u32(0) + u32(0) + b"bye")]),
    "extended_connect": case(lambda c: [c.headers(1, [(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                                                      (b":scheme", b"http"), (b":path", b"/ws"),
                                                      (b":authority", b"x")], end=False),
                                        data(1, b"\x81\x00"), frame(RST, 0, 1, u32(8))]),
    "big_body_with_acks": case(lambda c: [c.headers(1, req(b"POST"), end=False)]
                               + [data(1, b"z" * 16384) for _ in range(12)] + [data(1, b"", end=True)]),
    "data_on_half_closed_remote": case(lambda c: [c.headers(1), data(1, b"late")]),
    "data_on_ended_stream": case(lambda c: [c.headers(1), c.headers(3), data(1, b"x")], Mode(respond=True)),
    "headers_on_ended_stream": case(lambda c: [c.headers(1), c.headers(1)], Mode(respond=True)),
    "data_after_client_reset": case(lambda c: [c.headers(1, end=False), frame(RST, 0, 1, u32(8)),
                                               data(1, b"x"), frame(WU, 0, 1, u32(5))]),
    "headers_after_client_reset": case(lambda c: [c.headers(1, end=False), frame(RST, 0, 1, u32(8)),
                                                  c.headers(1)]),
    "rst_on_closed_stream": case(lambda c: [c.headers(1), frame(RST, 0, 1, u32(0))], Mode(respond=True)),
    # malicious: connection errors
    "bad_preface": case(lambda c: [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"], prologue=False),
    "frame_too_large": case(lambda c: [c.headers(1, end=False), data(1, b"x" * 16385)]),
    "headers_too_large": case(lambda c: [frame(HEADERS, EH, 1, b"\x82" * 16385)]),
    "headers_on_stream_0": case(lambda c: [frame(HEADERS, EH | ES, 0, c.block(req()))]),
    "data_on_stream_0": case(lambda c: [data(0, b"x")]),
    "even_stream_id": case(lambda c: [c.headers(2)]),
    "decreasing_stream_id": case(lambda c: [c.headers(5), c.headers(3)]),
    "data_on_idle_stream": case(lambda c: [data(1, b"x")]),
    "rst_stream_0": case(lambda c: [frame(RST, 0, 0, u32(0))]),
    "rst_bad_length": case(lambda c: [c.headers(1, end=False), frame(RST, 0, 1, b"\0\0\0")]),
    "window_update_zero_connection": case(lambda c: [frame(WU, 0, 0, u32(0))]),
    "window_update_zero_stream": case(lambda c: [c.headers(1, end=False), frame(WU, 0, 1, u32(0))]),
    "window_update_overflow_connection": case(lambda c: [frame(WU, 0, 0, u32(2**31 - 1))]),
    "window_update_overflow_stream": case(lambda c: [c.headers(1, end=False), frame(WU, 0, 1, u32(2**31 - 1)),
                                                     c.headers(3)]),
    "window_update_idle_stream": case(lambda c: [frame(WU, 0, 7, u32(10))]),
    "window_update_bad_length": case(lambda c: [frame(WU, 0, 0, b"\0\0\0\1\0")]),
    "settings_bad_length": case(lambda c: [frame(SETTINGS, 0, 0, b"\0" * 5)]),
    "settings_on_stream": case(lambda c: [frame(SETTINGS, 0, 1, b"")]),
    "settings_window_too_big": case(lambda c: [frame(SETTINGS, 0, 0, setting(4, 2**31))]),
    "settings_frame_size_too_small": case(lambda c: [frame(SETTINGS, 0, 0, setting(5, 16383))]),
    "settings_frame_size_too_big": case(lambda c: [frame(SETTINGS, 0, 0, setting(5, 2**24))]),
    "settings_enable_push_2": case(lambda c: [frame(SETTINGS, 0, 0, setting(2, 2))]),
    "settings_connect_protocol_2": case(lambda c: [frame(SETTINGS, 0, 0, setting(8, 2))]),
    "settings_window_overflow": case(lambda c: [c.headers(1, end=False), frame(WU, 0, 1, u32(2**31 - 1 - 65535)),
                                                frame(SETTINGS, 0, 0, setting(4, 65536))]),
    "ping_bad_length": case(lambda c: [frame(PING, 0, 0, b"1234567")]),
    "ping_on_stream": case(lambda c: [frame(PING, 0, 1, b"12345678")]),
    "priority_bad_length": case(lambda c: [frame(PRIORITY, 0, 1, b"\0\0\0\0")]),
    "priority_stream_0": case(lambda c: [frame(PRIORITY, 0, 0, u32(1) + b"\1")]),
    "priority_self_dependency": case(lambda c: [frame(PRIORITY, 0, 1, u32(1) + b"\1")]),
    "headers_self_dependency": case(lambda c: [c.headers(3, priority=(3, 1))]),
    "headers_priority_missing": case(lambda c: [frame(HEADERS, EH | PRIO, 1, b"\0\0\0")]),
    "data_padding_too_long": case(lambda c: [c.headers(1, end=False), frame(DATA, PAD, 1, b"\x05abcd")]),
    "data_padded_empty": case(lambda c: [c.headers(1, end=False), frame(DATA, PAD, 1, b"")]),
    "headers_padding_too_long": case(lambda c: [frame(HEADERS, EH | PAD, 1, b"\x09" + c.block(req())[:8])]),
    "continuation_without_headers": case(lambda c: [frame(CONT, EH, 1, c.block(req()))]),
    "continuation_wrong_stream": case(lambda c: [frame(HEADERS, 0, 1, c.block(req())), frame(CONT, EH, 3, b"")]),
    "headers_interrupted": case(lambda c: [frame(HEADERS, 0, 1, c.block(req())), frame(PING, 0, 0, b"x" * 8)]),
    "continuation_flood": case(lambda c: [frame(HEADERS, 0, 1, c.block(req()))] + [frame(CONT, 0, 1, b"")] * 70),
    "header_list_too_large": case(lambda c: [c.headers(1, req(extra=[(b"x-big", b"v" * 9000)]))]),
    "push_promise": case(lambda c: [c.headers(1, end=False), frame(PUSH, EH, 1, u32(2) + c.block(req()))]),
    "goaway_on_stream": case(lambda c: [frame(GOAWAY, 0, 1, u32(0) + u32(0))]),
    "goaway_too_short": case(lambda c: [frame(GOAWAY, 0, 0, u32(0))]),
    "stream_window_exceeded": case(lambda c: [c.headers(1, end=False)] + [data(1, b"y" * 16384)] * 4
                                   + [data(1, b"yy")], Mode(ack=False)),
    "connection_window_exceeded": case(lambda c: [c.headers(1, end=False), c.headers(3, end=False)]
                                       + [data(1, b"y" * 16384)] * 3 + [data(3, b"y" * 16384)] * 3
                                       + [data(3, b"y" * 16384)] * 3, Mode(ack=False)),
    "data_on_ended_then_headers_lower": case(lambda c: [c.headers(3), c.headers(1)], Mode(respond=True)),
    # intentional differences (see below)
    "rst_on_idle_stream": case(lambda c: [c.headers(1), frame(RST, 0, 3, u32(0))]),
    "window_update_reserved_bit": case(lambda c: [c.headers(1, end=False), frame(WU, 0, 1, u32(0x80000000 | 7))]),
    "settings_ack_with_payload": case(lambda c: [frame(SETTINGS, 1, 0, setting(4, 1))]),
    "hpack_garbage": case(lambda c: [frame(HEADERS, EH | ES, 1, b"\xff\xff\xff\xff\x0f")]),
    "first_frame_not_settings": case(lambda c: [C.PREFACE, c.headers(1)], prologue=False),
    "headers_padding_into_priority": case(lambda c: [frame(HEADERS, EH | PAD | PRIO, 1,
                                                           b"\x06" + u32(0) + b"\x10" + b"\x82\x86")]),
    "content_length_ended_by_headers": case(lambda c: [c.headers(1, req(extra=[(b"content-length", b"5")]))]),
    "too_many_streams": case(lambda c: [c.headers(sid) for sid in (1, 3, 5, 7, 9)] + [data(9, b"x"), c.headers(11)]),
    "content_length_exceeded": case(lambda c: [c.headers(1, req(b"POST", extra=[(b"content-length", b"3")]),
                                                         end=False), data(1, b"12345"), c.headers(3)]),
    "content_length_short": case(lambda c: [c.headers(1, req(b"POST", extra=[(b"content-length", b"5")]),
                                                      end=False), data(1, b"123", end=True), c.headers(3)]),
    "trailers_without_end_stream": case(lambda c: [c.headers(1, req(b"POST"), end=False),
                                                   c.headers(1, [(b"x-t", b"1")], end=False), c.headers(3)]),
    "frames_after_our_reset": case(lambda c: [c.headers(1, req(b"POST"), end=False), data(1, b"x"),
                                              c.headers(1, [(b"x-t", b"1")]), c.headers(3)], Mode(early=True)),
    "frames_after_client_goaway": case(lambda c: [c.headers(1, end=False), frame(GOAWAY, 0, 0, u32(1) + u32(0)),
                                                  frame(SETTINGS, 1, 0), data(1, b"x", end=True),
                                                  frame(PING, 0, 0, b"p" * 8)]),
    "altsvc_from_client": case(lambda c: [frame(0xA, 0, 0, b"ext"), c.headers(1)]),
    "settings_invalid_then_valid": case(lambda c: [frame(SETTINGS, 0, 0, setting(2, 100) + setting(2, 0))]),
    "push_promise_without_end_headers": case(lambda c: [c.headers(1, end=False), frame(PUSH, 0, 1, u32(2))]),
    "push_promise_too_short": case(lambda c: [frame(PUSH, 0, 0, b"")]),
    "goaway_reserved_bit": case(lambda c: [c.headers(1), frame(GOAWAY, 0, 0, u32(0x80000001) + u32(0))]),
    "continuation_on_closed_stream": case(lambda c: [c.headers(1), c.headers(3), frame(CONT, EH, 1, b"")],
                                          Mode(respond=True)),
    "interrupted_header_block": case(lambda c: [frame(HEADERS, 0, 1, c.block(req())), frame(DATA, PAD, 1, b"")]),
    "invalid_content_length_value": case(lambda c: [c.headers(1, req(extra=[(b"content-length", b"x")]))]),
    "head_request_with_body": case(lambda c: [c.headers(1, req(b"HEAD", extra=[(b"content-length", b"2")]),
                                                        end=False), data(1, b"ab", end=True)]),
}


def _error(code: int) -> Callable[[Outcome], bool]:
    return lambda o: o.error is not None and o.error[1] == code


def _reset_out(sid: int, code: int) -> Callable[[Outcome], bool]:
    return lambda o: (RST, 0, sid, u32(code)) in [f for _, f in o.out] and o.error is None


#: We reject what h2 accepts, or reject with a more precise code.
STRICTER_THAN_H2: dict[str, tuple[str, str, Callable[[Outcome], bool]]] = {
    "rst_on_idle_stream": ("RFC 9113 §6.4", "RST_STREAM on an idle stream is a connection error PROTOCOL_ERROR "
                           "(h2 ignores it)", _error(C.PROTOCOL_ERROR)),
    "settings_ack_with_payload": ("RFC 9113 §6.5", "a SETTINGS ACK with a payload is a FRAME_SIZE_ERROR (h2: "
                                  "PROTOCOL_ERROR)", _error(C.FRAME_SIZE_ERROR)),
    "hpack_garbage": ("RFC 9113 §4.3", "a header block that cannot be decoded is a COMPRESSION_ERROR (h2: "
                      "PROTOCOL_ERROR)", _error(C.COMPRESSION_ERROR)),
    "first_frame_not_settings": ("RFC 9113 §3.4", "the client preface must be followed by SETTINGS (h2 does not "
                                 "check)", _error(C.PROTOCOL_ERROR)),
    "headers_padding_into_priority": ("RFC 9113 §6.2", "padding longer than the header block fragment is a "
                                      "PROTOCOL_ERROR (h2 counts the priority fields as room for padding)",
                                      _error(C.PROTOCOL_ERROR)),
    "content_length_ended_by_headers": ("RFC 9113 §8.1.1", "content-length 5 with END_STREAM on HEADERS is a "
                                        "malformed request: RST_STREAM PROTOCOL_ERROR (h2 accepts it)",
                                        _reset_out(1, C.PROTOCOL_ERROR)),
    "settings_invalid_then_valid": ("RFC 9113 §6.5.3", "settings are processed in order: an invalid value is an "
                                    "error even if a later one in the same frame replaces it (h2 keeps only the "
                                    "last value of each setting)", _error(C.PROTOCOL_ERROR)),
    "push_promise_without_end_headers": ("RFC 9113 §8.4", "a PUSH_PROMISE from a client is a PROTOCOL_ERROR at "
                                         "once (h2 first waits for the end of its header block)",
                                         _error(C.PROTOCOL_ERROR)),
    "push_promise_too_short": ("RFC 9113 §4.2", "a PUSH_PROMISE too short for its promised stream id is a "
                               "FRAME_SIZE_ERROR, looked at before the PROTOCOL_ERROR of any client PUSH_PROMISE "
                               "(h2 reports PROTOCOL_ERROR)", _error(C.FRAME_SIZE_ERROR)),
    "continuation_on_closed_stream": ("RFC 9113 §6.10", "a CONTINUATION outside a header block is always a "
                                      "PROTOCOL_ERROR (h2 reports STREAM_CLOSED when its stream is closed)",
                                      _error(C.PROTOCOL_ERROR)),
    "interrupted_header_block": ("RFC 9113 §4.3", "a frame other than CONTINUATION inside a header block is a "
                                 "PROTOCOL_ERROR before that frame's own errors are looked at (h2 reports the "
                                 "frame's own error first, here FRAME_SIZE_ERROR)", _error(C.PROTOCOL_ERROR)),
    "bad_preface": ("RFC 9113 §3.4", "an invalid preface gets GOAWAY(PROTOCOL_ERROR) (h2 closes without one; "
                    "both are allowed)", _error(C.PROTOCOL_ERROR)),
}

#: We answer with a stream error (or ignore) where h2 ends the whole connection.
MORE_LENIENT_THAN_H2: dict[str, tuple[str, str, Callable[[Outcome], bool]]] = {
    "too_many_streams": ("RFC 9113 §5.1.2", "a stream above SETTINGS_MAX_CONCURRENT_STREAMS gets RST_STREAM "
                         "REFUSED_STREAM (retryable); its DATA is ignored (h2: connection error PROTOCOL_ERROR)",
                         lambda o: _reset_out(9, C.REFUSED_STREAM)(o) and _reset_out(11, C.REFUSED_STREAM)(o)),
    "content_length_exceeded": ("RFC 9113 §8.1.1", "more DATA than content-length: RST_STREAM PROTOCOL_ERROR (h2: "
                                "connection error)", _reset_out(1, C.PROTOCOL_ERROR)),
    "content_length_short": ("RFC 9113 §8.1.1", "END_STREAM before content-length bytes: RST_STREAM "
                             "PROTOCOL_ERROR (h2: connection error)", _reset_out(1, C.PROTOCOL_ERROR)),
    "trailers_without_end_stream": ("RFC 9113 §8.1", "a second HEADERS without END_STREAM is a malformed request: "
                                    "RST_STREAM PROTOCOL_ERROR (h2: connection error)",
                                    _reset_out(1, C.PROTOCOL_ERROR)),
    "frames_after_our_reset": ("RFC 9113 §5.1 (closed)", "frames on a stream we reset are ignored (h2 answers "
                               "each with RST_STREAM STREAM_CLOSED)",
                               lambda o: o.error is None and (RST, 0, 1, u32(C.STREAM_CLOSED)) not in
                               [f for _, f in o.out]),
    "frames_after_client_goaway": ("RFC 9113 §6.8", "after the client's GOAWAY its streams up to the last one "
                                   "continue and control frames are processed (h2 treats any frame after it as "
                                   "a connection error)", lambda o: o.error is None and ("end", 1) in
                                   [e for _, e in o.events]),
    "altsvc_from_client": ("RFC 7838 §4", "ALTSVC frames from a client are ignored unparsed, like any extension "
                           "frame a server does not use (h2 parses them: a malformed one is a connection error)",
                           lambda o: o.error is None and o.events[-1][1][0] == "request"),
    "window_update_reserved_bit": ("RFC 9113 §6.9", "the reserved bit of a WINDOW_UPDATE increment is ignored "
                                   "(h2 reads it as part of the increment: connection error)",
                                   lambda o: o.error is None and o.events[-1][1] == ("window", 1)),
    "goaway_reserved_bit": ("RFC 9113 §6.8", "the reserved bit of GOAWAY's last stream id is ignored (h2 reads "
                            "it as part of the id)", lambda o: o.events[-1][1] == ("goaway", 0, 1)),
    "invalid_content_length_value": ("RFC 9113 §8.1.1", "a malformed content-length is reported with the request "
                                     "and rejected by request validation as a stream error (h2: connection "
                                     "error)", lambda o: o.error is None and o.events[-1][1][0] == "request"),
}
DIFFERENCES = {**STRICTER_THAN_H2, **MORE_LENIENT_THAN_H2}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_as_h2(name):
    frames, mode = CASES[name]()
    ours = run_ours(frames, mode)
    reference = run_h2(frames, mode)
    if name in DIFFERENCES:
        section, why, expected = DIFFERENCES[name]
        assert expected(ours), (section, why, ours)
        assert ours.plain() != reference.plain(), f"{name}: h2 now agrees; remove it from the differences"
    else:
        assert ours.plain() == reference.plain()


@pytest.mark.parametrize("name", sorted(CASES))
def test_any_split_gives_the_same_result(name):
    """Split at every byte boundary (two pieces) and one byte at a time: same events, frames, error."""
    frames, mode = CASES[name]()
    whole = run_ours(frames, mode, per_frame=False).plain()
    stream = b"".join(frames)
    assert run_ours([bytes([b]) for b in stream], mode, per_frame=False).plain() == whole
    step = max(1, len(stream) // 300)
    for cut in range(1, len(stream), step):
        assert run_ours([stream[:cut], stream[cut:]], mode, per_frame=False).plain() == whole, cut


def test_corpus_covers_every_difference():
    assert set(DIFFERENCES) <= set(CASES)
    for section, why, _ in DIFFERENCES.values():
        assert section.startswith("RFC") and why


# -- fuzz ---------------------------------------------------------------------------------------

@dataclass
class Sent:
    """What the fuzz sent in one frame (to tell whether a divergence is a documented one)."""

    kind: int
    sid: int
    flags: int = 0
    new_stream: bool = False  # HEADERS opening a stream id above every earlier one
    length_header: bytes | None = None  # content-length of a request
    trailers: bool = False  # HEADERS on a stream that already had its request
    duplicate_settings: bool = False  # a SETTINGS frame naming a setting twice


_VALUES = [0, 1, 100, 16383, 16384, 65535, 65536, 2**24, 2**31 - 1, 2**31, 2**32 - 1]


@st.composite
def sequences(draw) -> tuple[list[bytes], list[Sent], Mode]:
    client = Client()
    frames: list[bytes] = list(PROLOGUE)
    sent: list[Sent] = [Sent(-1, 0)] * len(frames)
    opened: list[int] = []
    lengths: dict[int, bytes | None] = {}
    next_sid = 1

    def pick_sid(allow_zero: bool = False) -> int:
        choices = [next_sid, next_sid + 2 * draw(st.integers(0, 3))]
        if opened:
            choices += [draw(st.sampled_from(opened))] * 3
        choices += [draw(st.integers(0, 12))] if allow_zero or draw(st.booleans()) else []
        return draw(st.sampled_from(choices))

    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["headers"] * 5 + ["data"] * 4 + ["wu", "rst", "settings", "ping", "priority",
                                                                      "unknown", "ack", "goaway", "raw"]))
        if kind == "headers":
            sid = pick_sid()
            trailers = sid in lengths
            if trailers:
                headers = [(b"x-t", draw(st.sampled_from([b"1", b"2"])))]
                length = None
            else:
                method = draw(st.sampled_from([b"GET", b"POST", b"HEAD"]))
                length = draw(st.sampled_from([None, b"0", b"3", b"20", b"x", b"16384"]))
                extra = [(b"x-v", draw(st.sampled_from([b"a", b"b", b"c" * 50])))]
                if length is not None:
                    extra.append((b"content-length", length))
                if draw(st.integers(0, 20)) == 0:
                    extra.append((b"x-big", b"v" * 9000))
                headers = req(method, draw(st.sampled_from([b"/", b"/a", b"/b?q=1"])), extra)
            end = draw(st.booleans())
            pad = draw(st.sampled_from([None, None, 0, 3, 40]))
            prio = draw(st.sampled_from([None, None, (0, 16), (sid, 1), (1, 255), (0x80000003, 7)]))
            split = draw(st.sampled_from([0, 0, 0, 1, 5]))
            new = sid > max(opened, default=0) and sid % 2 == 1
            built = client.headers(sid, headers, end, pad, prio, split)
            frames += built
            sent += [Sent(HEADERS, sid, (ES if end else 0) | (PAD if pad is not None else 0)
                          | (PRIO if prio else 0), new, length, trailers)] * len(built)
            if new:
                opened.append(sid)
                lengths[sid] = length
                next_sid = sid + 2
        elif kind == "data":
            sid = pick_sid()
            size = draw(st.sampled_from([0, 1, 3, 20, 100, 16384, 16385]))
            end = draw(st.booleans())
            pad = draw(st.sampled_from([None, None, 0, 2, 255]))
            if pad is not None and pad + size + 1 > 16384:
                pad = 0
            frames.append(data(sid, b"d" * size, end, pad))
            sent.append(Sent(DATA, sid, ES if end else 0))
        elif kind == "wu":
            sid = pick_sid(allow_zero=True)
            frames.append(frame(WU, 0, sid, u32(draw(st.sampled_from([0, 1, 1000, 2**31 - 1, 2**31 + 5])))))
            sent.append(Sent(WU, sid, 0))
        elif kind == "rst":
            sid = pick_sid()
            frames.append(frame(RST, 0, sid, u32(draw(st.sampled_from([0, 8, 1])))))
            sent.append(Sent(RST, sid))
        elif kind == "settings":
            pairs = draw(st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 8, 0x99]), st.sampled_from(_VALUES)),
                                  max_size=3))
            frames.append(frame(SETTINGS, 0, 0, b"".join(setting(k, v) for k, v in pairs)))
            keys = [k for k, _ in pairs]
            sent.append(Sent(SETTINGS, 0, duplicate_settings=len(set(keys)) != len(keys)))
        elif kind == "ack":
            payload = draw(st.sampled_from([b"", b"", b"", setting(4, 1)]))
            frames.append(frame(SETTINGS, 1, 0, payload))
            sent.append(Sent(SETTINGS, 0, 1 if not payload else 0x81))
        elif kind == "ping":
            flags = draw(st.sampled_from([0, 1]))
            frames.append(frame(PING, flags, draw(st.sampled_from([0, 0, 0, 1])),
                                draw(st.sampled_from([b"12345678", b"1234567"]))))
            sent.append(Sent(PING, 0, flags))
        elif kind == "priority":
            sid = pick_sid()
            frames.append(frame(PRIORITY, 0, sid, u32(draw(st.sampled_from([0, 1, sid, 3]))) + b"\x10"))
            sent.append(Sent(PRIORITY, sid))
        elif kind == "unknown":
            ftype = draw(st.integers(10, 255))
            frames.append(frame(ftype, draw(st.integers(0, 255)), pick_sid(True), b"ext"))
            sent.append(Sent(ftype, 0))
        elif kind == "goaway":
            frames.append(frame(GOAWAY, 0, 0, u32(draw(st.integers(0, 9))) + u32(0)))
            sent.append(Sent(GOAWAY, 0))
        else:
            ftype = draw(st.integers(0, 9))
            payload = draw(st.binary(max_size=12))
            flags = draw(st.integers(0, 255))
            sid = pick_sid(True)
            frames.append(frame(ftype, flags, sid, payload))
            keys = [payload[i:i + 2] for i in range(0, len(payload) - 5, 6)]
            sent.append(Sent(ftype, sid, flags | (0x80 if ftype == SETTINGS and payload else 0),
                             duplicate_settings=len(set(keys)) != len(keys)))
    mode = draw(st.sampled_from([Mode(), Mode(ack=False), Mode(respond=True), Mode(early=True)]))
    return frames, sent, mode


def _trace(outcome: Outcome, index: int) -> tuple:
    return ([e for i, e in outcome.events if i == index], [f for i, f in outcome.out if i == index],
            outcome.error[1] if outcome.error and outcome.error[0] == index else None)


def _explained(sent: Sent, ours: tuple, ref: tuple, our_resets: set[int], after_goaway: bool,
               reason: str) -> str | None:
    """Which documented difference explains a divergence at this frame (None: a real bug)."""
    events, out, error = ours
    ref_error = ref[2]
    if error == C.PROTOCOL_ERROR and ref_error is not None and reason.startswith("header block interrupted"):
        return "interrupted_header_block"
    if after_goaway and ref_error == C.PROTOCOL_ERROR:
        return "frames_after_client_goaway"  # h2 refuses everything after it: no comparison possible
    rst = {(f[2], int.from_bytes(f[3], "big")) for f in out if f[0] == RST}
    if sent.kind == HEADERS and sent.new_stream and (sent.sid, C.REFUSED_STREAM) in rst:
        return "too_many_streams"
    if sent.kind in (HEADERS, DATA) and (sent.sid, C.PROTOCOL_ERROR) in rst and error is None:
        if sent.kind == HEADERS and sent.trailers and not sent.flags & ES:
            return "trailers_without_end_stream"
        return "content_length_exceeded"  # or short, or ended by HEADERS: section 8.1.1
    if sent.sid in our_resets and error is None and ref_error is None and \
            (sent.sid, C.STREAM_CLOSED) in {(f[2], int.from_bytes(f[3], "big")) for f in ref[1] if f[0] == RST}:
        return "frames_after_our_reset"
    if sent.sid in our_resets and error is None and ref_error is not None:
        return "frames_after_our_reset"  # h2 tracks that reset stream as open until then: see above
    if sent.kind == RST and error == C.PROTOCOL_ERROR and ref_error is None:
        return "rst_on_idle_stream"
    if sent.kind == SETTINGS and sent.flags == 0x81 and error == C.FRAME_SIZE_ERROR:
        return "settings_ack_with_payload"
    if sent.kind == HEADERS and error == C.COMPRESSION_ERROR and ref_error == C.PROTOCOL_ERROR:
        return "hpack_garbage"
    if sent.kind == HEADERS and sent.flags & PAD and sent.flags & PRIO and error == C.PROTOCOL_ERROR:
        return "headers_padding_into_priority"
    if sent.kind == SETTINGS and sent.duplicate_settings and error is not None and ref_error != error:
        return "settings_invalid_then_valid"
    if sent.kind == PUSH and error == C.PROTOCOL_ERROR and ref_error is None:
        return "push_promise_without_end_headers"
    if sent.kind == PUSH and error == C.FRAME_SIZE_ERROR and ref_error == C.PROTOCOL_ERROR:
        return "push_promise_too_short"
    if sent.kind == GOAWAY and [e[:2] for e in events] == [e[:2] for e in ref[0]] and error == ref_error:
        return "goaway_reserved_bit"
    if sent.kind == CONT and error == C.PROTOCOL_ERROR and ref_error != C.PROTOCOL_ERROR:
        return "continuation_on_closed_stream"
    if sent.kind == 0xA and error is None:
        return "altsvc_from_client"
    if sent.kind == WU and error is None and ref_error == C.PROTOCOL_ERROR:
        return "window_update_reserved_bit"
    if sent.kind == HEADERS and sent.length_header in (b"x",) and error is None and ref_error == C.PROTOCOL_ERROR:
        return "invalid_content_length_value"
    if sent.kind == DATA and sent.length_header is None and error is None and ref_error == C.PROTOCOL_ERROR:
        return "content_length_exceeded"
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sequences(), st.randoms(use_true_random=False))
def test_fuzz_against_h2(generated, rnd):
    frames, sent, mode = generated
    ours = run_ours(frames, mode)
    ref = run_h2(frames, mode)
    our_resets: set[int] = set()
    after_goaway = False
    for index in range(len(frames)):
        mine, theirs = _trace(ours, index), _trace(ref, index)
        if mine != theirs:
            why = _explained(sent[index], mine, theirs, our_resets, after_goaway, ours.reason)
            assert why in DIFFERENCES, (index, sent[index], mine, theirs)
            break
        our_resets |= {f[2] for f in mine[1] if f[0] == RST}
        after_goaway = after_goaway or sent[index].kind == GOAWAY
        if mine[2] is not None:
            break
    # and any split of the same bytes gives what whole frames give
    stream = b"".join(frames)
    cuts = sorted(rnd.sample(range(1, len(stream)), min(6, len(stream) - 1)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert run_ours(pieces, mode, per_frame=False).plain() == run_ours(frames, mode, per_frame=False).plain()
