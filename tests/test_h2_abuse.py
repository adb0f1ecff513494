"""HTTP/2 abuse against the real server, with the h2 library (and its hyperframe/hpack) as a raw client.

Each attack runs on its own connection against one server process. The test checks the answer the RFCs and
the server's limits call for (GOAWAY with the right code, RST_STREAM, or a bounded buffer), that the
server's resident memory (psutil) stays bounded, and that a normal request on a new connection still works
afterwards. The CPU seconds and RSS before/after each attack are printed (``pytest -s``); docs/http2-tls.md
records a run. No assertion depends on timing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import psutil
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hpack import Encoder
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, SettingsFrame

from .conftest import ServerProcess, start_server

MiB = 1 << 20
RSS_BOUND = 64 * MiB  # growth allowed per attack: far below what the attack would cost unbounded
REQUEST = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "localhost")]
PREFACE_END = 0  # the server's bytes start with its SETTINGS frame


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with start_server(["--interface", "asgi", "--http", "2", "--log-level", "warning", "h2_apps:app"],
                      tmp_path=tmp_path_factory.mktemp("h2abuse")) as srv:
        yield srv


class Client:
    """An h2 client connection on a raw socket; ``frames`` sends hand-built frames too."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.events: list = []
        self.closed = False
        self.flush()

    def flush(self) -> None:
        self.send(self.conn.data_to_send())

    def send(self, data: bytes) -> None:
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except OSError:  # the server closed on us (a GOAWAY is waiting to be read)
                self.closed = True

    def pump(self, until: Callable[[], bool], limit: float = 30.0) -> None:
        deadline = time.monotonic() + limit
        while not until() and time.monotonic() < deadline:
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            try:
                self.events.extend(self.conn.receive_data(data))
            except h2.exceptions.ProtocolError:
                return
            if not self.closed:
                self.flush()

    def raw_goaway(self, limit: float = 30.0) -> tuple[int, int] | None:
        """Read what the server sends (without h2: the frames answer hand-built ones) until it closes;
        ``(last_stream_id, error_code)`` of its GOAWAY."""
        data = b""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            data += chunk
        pos = data.find(PREFACE_END)
        while len(data) - pos >= 9:
            length, ftype = int.from_bytes(data[pos:pos + 3], "big"), data[pos + 3]
            if ftype == 7:
                payload = data[pos + 9:pos + 17]
                return int.from_bytes(payload[:4], "big") & 0x7FFFFFFF, int.from_bytes(payload[4:8], "big")
            pos += 9 + length
        return None

    def goaway(self) -> h2.events.ConnectionTerminated | None:
        found = [e for e in self.events if isinstance(e, h2.events.ConnectionTerminated)]
        return found[0] if found else None

    def close(self) -> None:
        self.sock.close()


def usage(pid: int) -> tuple[float, int]:
    proc = psutil.Process(pid)
    cpu = proc.cpu_times()
    return cpu.user + cpu.system, proc.memory_info().rss


def still_serves(port: int) -> None:
    client = Client(port)
    sid = client.conn.get_next_available_stream_id()
    client.conn.send_headers(sid, REQUEST, end_stream=True)
    client.flush()
    client.pump(lambda: any(isinstance(e, h2.events.StreamEnded) for e in client.events))
    body = b"".join(e.data for e in client.events if isinstance(e, h2.events.DataReceived))
    client.close()
    assert body == b"Hello, world!"


def run_attack(server: ServerProcess, name: str, attack: Callable[[], None]) -> tuple[float, int]:
    cpu0, rss0 = usage(server.proc.pid)
    attack()
    cpu1, rss1 = usage(server.proc.pid)
    print(f"\n{name}: server CPU {cpu1 - cpu0:.2f}s, RSS {rss0 / MiB:.1f} -> {rss1 / MiB:.1f} MiB")
    still_serves(server.port)
    assert rss1 - rss0 < RSS_BOUND, f"{name}: RSS grew by {(rss1 - rss0) / MiB:.1f} MiB"
    return cpu1 - cpu0, rss1 - rss0


def test_rapid_reset_10000_pairs_gets_enhance_your_calm(server: ServerProcess) -> None:
    """CVE-2023-44487: HEADERS + RST_STREAM pairs on one connection. The remote-reset budget (burst
    max(200, 2 x --http2-max-concurrent-streams), refilled at 20/s) runs dry: GOAWAY ENHANCE_YOUR_CALM."""
    client = Client(server.port)

    def attack() -> None:
        out = bytearray()
        for _ in range(10_000):
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(sid, [*REQUEST[:2], (":path", "/slow?5"), REQUEST[3]])
            client.conn.reset_stream(sid, ErrorCodes.CANCEL)
            out += client.conn.data_to_send()
        client.send(bytes(out))
        client.pump(lambda: client.goaway() is not None)

    run_attack(server, "rapid reset 10000 HEADERS+RST_STREAM", attack)
    goaway = client.goaway()
    assert goaway is not None and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
    client.close()


def test_continuation_flood_10_mb_is_cut_off(server: ServerProcess) -> None:
    """CVE-2024-27316 class: a header block that never ends, 10 MB of CONTINUATION frames. At most 64
    CONTINUATION frames (of at most SETTINGS_MAX_FRAME_SIZE) are buffered: GOAWAY PROTOCOL_ERROR."""
    client = Client(server.port)
    block = Encoder().encode(REQUEST)

    found: list[tuple[int, int] | None] = []

    def attack() -> None:
        client.send(HeadersFrame(1, block, flags=["END_STREAM"]).serialize())  # no END_HEADERS
        piece = ContinuationFrame(1, b"\x40\x01a\x01b" * 3276).serialize()  # 16 380-byte fragments
        sent = 0
        while sent < 10 * MiB and not client.closed:
            client.send(piece * 16)
            sent += 16 * len(piece)
        found.append(client.raw_goaway())

    run_attack(server, "CONTINUATION flood 10 MB", attack)
    assert found[0] is not None and found[0][1] == ErrorCodes.PROTOCOL_ERROR, found
    client.close()


def test_hpack_bomb_is_refused(server: ServerProcess) -> None:
    """One 4 KB entry in the HPACK dynamic table, then a header block that references it 10,000 times (40 MB
    decoded from 10 KB). The decoded size is checked while decoding against --http2-max-headers-size:
    GOAWAY ENHANCE_YOUR_CALM; the header list is never built whole."""
    client = Client(server.port)
    encoder = Encoder()

    found: list[tuple[int, int] | None] = []

    def attack() -> None:
        first = encoder.encode([*REQUEST, ("x-bomb", "b" * 4000)])  # x-bomb is added to the dynamic table
        client.send(HeadersFrame(1, first, flags=["END_STREAM", "END_HEADERS"]).serialize())
        bomb = encoder.encode(REQUEST) + b"\xbe" * 10_000  # 0xbe: indexed field 62, the newest entry (x-bomb)
        client.send(HeadersFrame(3, bomb[:16000], flags=["END_STREAM"]).serialize()
                    + ContinuationFrame(3, bomb[16000:], flags=["END_HEADERS"]).serialize())
        found.append(client.raw_goaway())

    run_attack(server, "HPACK bomb 10000 x 4 KB", attack)
    assert found[0] is not None and found[0][1] == ErrorCodes.ENHANCE_YOUR_CALM, found
    client.close()


@pytest.mark.parametrize("kind", ["SETTINGS", "PING"])
def test_control_frame_flood_100k_gets_enhance_your_calm(server: ServerProcess, kind: str) -> None:
    """100,000 SETTINGS (or PING) frames, each of which the server must acknowledge. The control-frame budget
    (burst 1000, refilled at 100/s) runs dry: GOAWAY ENHANCE_YOUR_CALM, long before 100k answers are queued."""
    client = Client(server.port)
    frame = (SettingsFrame(0, settings={4: 65535}) if kind == "SETTINGS" else PingFrame(0, b"flooding")).serialize()

    found: list[tuple[int, int] | None] = []

    def attack() -> None:
        for _ in range(10):
            client.send(frame * 10_000)
        found.append(client.raw_goaway())

    run_attack(server, f"{kind} flood 100000 frames", attack)
    assert found[0] is not None and found[0][1] == ErrorCodes.ENHANCE_YOUR_CALM, found
    client.close()


def test_zero_window_stall_keeps_memory_bounded(server: ServerProcess) -> None:
    """A client that announces a zero stream window and then never reads: 20 streams each asking for a
    64 MiB response. Per stream, at most --http2-max-send-buffer-size is queued, then the app's send() waits;
    the 1.3 GB the app wants to send never piles up in memory, and other connections are served."""
    client = Client(server.port)
    client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 0})
    client.flush()

    def attack() -> None:
        client.pump(lambda: any(isinstance(e, h2.events.SettingsAcknowledged) for e in client.events))
        for _ in range(20):
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(sid, [*REQUEST[:2], (":path", f"/big?n={64 * MiB}"), REQUEST[3]],
                                     end_stream=True)
        client.flush()
        client.pump(lambda: len([e for e in client.events if isinstance(e, h2.events.ResponseReceived)]) == 20)

    run_attack(server, "zero-window stall, 20 x 64 MiB responses", attack)
    assert len([e for e in client.events if isinstance(e, h2.events.ResponseReceived)]) == 20
    assert not any(isinstance(e, h2.events.DataReceived) and e.data for e in client.events)
    client.close()


def test_stream_id_exhaustion(server: ServerProcess) -> None:
    """The highest stream id (2^31-1) is served; nothing can come after it: a lower id is a connection error
    PROTOCOL_ERROR (RFC 9113 5.1.1), and the server keeps no per-id state for the ids skipped."""
    client = Client(server.port)
    encoder = Encoder()
    top = 2**31 - 1

    found: list[tuple[int, int] | None] = []

    def attack() -> None:
        client.send(HeadersFrame(top, encoder.encode(REQUEST), flags=["END_STREAM", "END_HEADERS"]).serialize())
        client.send(HeadersFrame(1, encoder.encode(REQUEST), flags=["END_STREAM", "END_HEADERS"]).serialize())
        found.append(client.raw_goaway())

    run_attack(server, "stream id 2^31-1 then a lower one", attack)
    assert found == [(top, ErrorCodes.PROTOCOL_ERROR)]
    client.close()
