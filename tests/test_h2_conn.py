"""The sending side of protocol/h2conn.py, read back by the h2 library as a client: HEADERS split into
CONTINUATION frames, DATA within the peer's windows and frame size, window changes from SETTINGS and
WINDOW_UPDATE, the stateless HPACK response encoding, GOAWAY, PING, RST_STREAM, h2c upgrade."""

from __future__ import annotations

import base64

import h2.config
import h2.connection
import h2.events
import pytest
from h2.settings import SettingCodes

from django_granian.protocol import h2conn as C
from django_granian.protocol.http2 import TABLE_SIZE_ZERO, encode_fields, response_block


class Recorder:
    def __init__(self):
        self.events = []

    def __getattr__(self, name):
        if name.startswith("h2_"):
            return lambda *args: self.events.append((name, *args))
        raise AttributeError(name)


def pair(client_settings=None):
    """(our server connection, an h2 client connection), handshake done, one request open on stream 1."""
    rec = Recorder()
    server = C.H2ServerConnection(rec, max_concurrent_streams=10, initial_window_size=65535)
    server.header_prefix = TABLE_SIZE_ZERO
    server.initiate()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    if client_settings:
        client.update_settings(client_settings)
    client.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "x")],
                        end_stream=True)
    server.receive(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive(client.data_to_send())  # the client's SETTINGS ACK
    return server, client, rec


def events(client, server):
    out = client.receive_data(server.data_to_send())
    return out


def test_response_headers_and_body_in_one_write():
    server, client, rec = pair()
    assert rec.events[0][0] == "h2_settings" and [e[1] for e in rec.events if e[0] == "h2_request"] == [1]
    block, length, present = response_block(200, [(b"content-type", b"text/plain"), (b"content-length", b"5")])
    assert (length, present) == (5, 0)
    assert server.send_response(1, block, b"hello", True) == 5
    got = events(client, server)
    response = [e for e in got if isinstance(e, h2.events.ResponseReceived)][0]
    assert response.headers == [(b":status", b"200"), (b"content-type", b"text/plain"), (b"content-length", b"5")]
    assert b"".join(e.data for e in got if isinstance(e, h2.events.DataReceived)) == b"hello"
    assert any(isinstance(e, h2.events.StreamEnded) for e in got)
    assert not client.decoder.header_table.dynamic_entries  # the table size update to 0 went first
    assert 1 not in server.streams  # both sides ended: closed


def test_big_header_block_is_split_into_continuation_frames():
    server, client, _ = pair()
    fields = [(b":status", b"200")] + [(b"x-h%d" % i, b"v" * 1000) for i in range(40)]
    assert server.send_headers(1, encode_fields(fields), end=True)
    got = events(client, server)
    assert [e for e in got if isinstance(e, h2.events.ResponseReceived)][0].headers == fields


def test_data_respects_the_peers_windows_and_frame_size():
    server, client, rec = pair({SettingCodes.INITIAL_WINDOW_SIZE: 10})
    assert server.window(1) == 10
    assert server.send_response(1, encode_fields([(b":status", b"200")]), b"x" * 11, True) == 0  # too big: none
    assert server.send_data(1, b"y" * 10)
    assert server.window(1) == 0
    events(client, server)
    client.increment_flow_control_window(5, 1)
    server.receive(client.data_to_send())
    assert ("h2_window", 1) in rec.events and server.window(1) == 5
    # a smaller SETTINGS_INITIAL_WINDOW_SIZE can make the window negative (RFC 9113 section 6.9.2)
    client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 2})
    server.receive(client.data_to_send())
    assert server.streams[1].send_window == -3 and server.window(1) == -3
    assert server.max_send_frame == 16384
    client.update_settings({SettingCodes.MAX_FRAME_SIZE: 20000})
    server.receive(client.data_to_send())
    assert server.max_send_frame == 20000


def test_reset_goaway_ping_and_acks():
    server, client, _ = pair()
    server.reset_stream(1, C.CANCEL)
    server.reset_stream(1, C.CANCEL)  # already closed: nothing more
    server.ping(b"12345678")
    server.goaway(C.NO_ERROR)
    got = events(client, server)
    assert [e.error_code for e in got if isinstance(e, h2.events.StreamReset)] == [C.CANCEL]
    assert [e.ping_data for e in got if isinstance(e, h2.events.PingReceived)] == [b"12345678"]
    assert [e.last_stream_id for e in got if isinstance(e, h2.events.ConnectionTerminated)] == [1]
    assert not server.send_headers(1, b"\x88")  # a closed stream cannot send


def test_acknowledgements_are_batched_at_half_a_window():
    rec = Recorder()
    server = C.H2ServerConnection(rec, initial_window_size=65535, connection_window=65535)
    server.initiate()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", "/"), (":authority", "x")])
    client.send_data(1, b"a" * 16000)
    server.receive(client.data_to_send())
    server.data_to_send()
    server.ack(1, 16000)
    assert server.data_to_send() == b""  # below half a window: nothing yet
    server.ack(1, 20000)
    out = server.data_to_send()
    assert out.count(bytes([C.WINDOW_UPDATE])) >= 2  # connection and stream


def test_h2c_upgrade_settings():
    rec = Recorder()
    server = C.H2ServerConnection(rec)
    settings = base64.urlsafe_b64encode(b"\x00\x04\x00\x00\x10\x00").rstrip(b"=")  # INITIAL_WINDOW_SIZE 4096
    server.initiate_upgrade(settings)
    assert server.send_initial_window == 4096 and server.streams[1].remote_closed and server.highest == 1
    assert server.data_to_send()[3] == C.SETTINGS  # our preface, and no ACK for HTTP2-Settings
    for bad in (b"!!", b"AAAAA", base64.urlsafe_b64encode(b"\x00\x04\x80\x00\x00\x00")):
        with pytest.raises(ValueError):
            C.H2ServerConnection(Recorder()).initiate_upgrade(bad)
