"""Lean WebSocket echo load client (raw RFC 6455 over asyncio/uvloop; no per-message library overhead).

    python bench/wsclient.py --connections 64 --size 16 --duration 10 ws://127.0.0.1:8000/

Each connection performs the opening handshake, then keeps ``--inflight`` text messages of ``--size``
bytes in flight: every echoed message (any data frame from the server) triggers the next send. The
frame is masked once with a fixed key and re-sent as the same bytes, so the client spends its time in
the event loop, not in framing. At the end prints ``BENCH_JSON {"messages", "duration_s", "p50_ms",
"p99_ms", "errors"}``; ``messages`` counts echoes received during the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import sys
import time
from array import array
from collections import deque
from urllib.parse import urlsplit


def masked_text_frame(payload: bytes, key: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


class Stats:
    def __init__(self) -> None:
        self.messages = 0
        self.running = True
        self.measuring = True
        self.errors = {"handshake": 0, "closed": 0, "protocol": 0}
        self.rtts = array("d")


class EchoClient(asyncio.Protocol):
    def __init__(self, request: bytes, frame: bytes, inflight: int, stats: Stats, ready: asyncio.Future):
        self.request = request
        self.frame = frame
        self.inflight = inflight
        self.stats = stats
        self.ready = ready
        self.buf = bytearray()
        self.open = False
        self.sent_at: deque[float] = deque()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport
        transport.write(self.request)

    def start(self) -> None:
        now = time.perf_counter()
        for _ in range(self.inflight):
            self.sent_at.append(now)
            self.transport.write(self.frame)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.stats.errors["handshake"] += 1
                self.transport.close()
                if not self.ready.done():
                    self.ready.set_result(False)
                return
            del buf[:end + 4]
            self.open = True
            if not self.ready.done():
                self.ready.set_result(True)
        stats = self.stats
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 4], "big")
                start = pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2:pos + 10], "big")
                start = pos + 10
            if b1 & 0x80:
                stats.errors["protocol"] += 1  # servers must not mask
            if size - start < n:
                break
            opcode = buf[pos] & 0x0F
            pos = start + n
            if opcode in (1, 2):
                sent = self.sent_at.popleft() if self.sent_at else None
                if stats.measuring:
                    stats.messages += 1
                    if sent is not None:
                        stats.rtts.append(time.perf_counter() - sent)
                if stats.running:
                    self.sent_at.append(time.perf_counter())
                    self.transport.write(self.frame)
            elif opcode == 8:
                if stats.running:
                    stats.errors["closed"] += 1
                self.transport.close()
                return
        if pos:
            del buf[:pos]

    def connection_lost(self, exc):  # type: ignore[override]
        if not self.ready.done():
            self.stats.errors["handshake"] += 1
            self.ready.set_result(False)
        elif self.stats.running:
            self.stats.errors["closed"] += 1


async def run(url: str, connections: int, size: int, inflight: int, duration: float) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    frame = masked_text_frame(b"x" * size)
    loop = asyncio.get_running_loop()
    stats = Stats()
    stats.measuring = False
    clients = []
    for _ in range(connections):
        ready = loop.create_future()
        try:
            _, proto = await loop.create_connection(
                lambda r=ready: EchoClient(request, frame, inflight, stats, r), host, port)  # type: ignore[misc]
        except OSError:
            stats.errors["handshake"] += 1
            continue
        clients.append((proto, ready))
    ok = [p for p, r in clients if await r]
    for proto in ok:
        proto.start()
    await asyncio.sleep(min(0.5, duration / 10))  # let every connection reach steady state
    stats.measuring = True
    t0 = time.perf_counter()
    await asyncio.sleep(duration)
    stats.measuring = False
    elapsed = time.perf_counter() - t0
    stats.running = False
    for proto in ok:
        proto.transport.write(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # masked close 1000 (zero key)
    await asyncio.sleep(0.05)
    for proto in ok:
        proto.transport.close()
    rtts = sorted(stats.rtts)
    pct = (lambda q: round(rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1000, 3)) if rtts else (lambda q: None)
    return {"messages": stats.messages, "duration_s": elapsed, "connections": len(ok),
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "errors": stats.errors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--inflight", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0)
    args = ap.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.url, args.connections, args.size, args.inflight, args.duration))
    sys.stdout.write("BENCH_JSON " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
