"""HTTP/3 load generator for bench/ (``H3Load`` in loadgen.py): aioquic's QUIC and HTTP/3 on uvloop.

``--connections C`` QUIC connections, each keeping ``--streams M`` requests in flight for ``--duration``
seconds: every response that ends starts the next request from inside the event callback (no task
per request). It is Python too, so it costs about as much per request as a Python server: the
table's ``load CPU`` column shows when it, not the server, was the limit, and ``per server CPU-s``
(requests per second of the server's own CPU) is the figure that does not depend on it.

Prints ``BENCH_JSON {"requests", "duration_s", "errors", "p50_ms", "p99_ms", "bytes"}``. With
``--requests N`` each connection sends exactly N requests instead (``bench instructions``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, StreamReset

from django_granian.server.quic import size_buffers


class LoadProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.fields: list[tuple[bytes, bytes]] = []
        self.started: dict[int, float] = {}
        self.latencies: list[float] = []
        self.done = 0
        self.errors = {"status": 0, "reset": 0, "closed": 0}
        self.nbytes = 0
        self.running = False
        self.limit = 0  # --requests: stop after this many responses

    def send_request(self) -> None:
        sid = self._quic.get_next_available_stream_id()
        self.h3.send_headers(sid, self.fields, end_stream=True)
        self.started[sid] = time.perf_counter()

    def quic_event_received(self, event: Any) -> None:
        if isinstance(event, ConnectionTerminated):
            self.errors["closed"] += 1
            self.running = False
            return
        if isinstance(event, StreamReset):
            self.errors["reset"] += 1
            self.started.pop(event.stream_id, None)
            if self.running:
                self.send_request()
            return
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                status = h3_event.headers[0][1] if h3_event.headers and h3_event.headers[0][0] == b":status" else b""
                if not status.startswith((b"2", b"3")):
                    self.errors["status"] += 1
            elif isinstance(h3_event, DataReceived):
                self.nbytes += len(h3_event.data)
            if getattr(h3_event, "stream_ended", False):
                t0 = self.started.pop(h3_event.stream_id, None)
                if t0 is not None and self.running:
                    self.done += 1
                    self.latencies.append(time.perf_counter() - t0)
                    if self.limit and self.done + len(self.started) >= self.limit:
                        if not self.started:  # the last one answered
                            self.running = False
                        continue
                    self.send_request()


async def main(args: argparse.Namespace) -> dict:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 443
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE,
                               server_name=args.server_name, max_stream_data=4 << 20, max_data=64 << 20)
    fields = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", f"{args.server_name}:{port}".encode()),
              (b":path", path.encode()), (b"user-agent", b"bench-h3load")]
    protos: list[LoadProtocol] = []
    stack = []
    for _ in range(args.connections):
        cm = connect(host, port, configuration=config, create_protocol=LoadProtocol)
        proto = await asyncio.wait_for(cm.__aenter__(), 10)
        sock = proto._transport.get_extra_info("socket")
        if sock is not None:
            size_buffers(sock)  # as the server does: no datagram dropped for a full buffer on our side
        stack.append(cm)
        proto.fields = fields
        protos.append(proto)
    t0 = time.perf_counter()
    for proto in protos:
        proto.running = True
        proto.limit = args.requests
        for _ in range(args.streams):
            proto.send_request()
        proto.transmit()
    if args.requests:  # a fixed count (bench instructions): wait for it, or for the connection to end
        while any(p.running for p in protos):
            await asyncio.sleep(0.005)
    else:
        await asyncio.sleep(args.duration)
    elapsed = time.perf_counter() - t0
    for proto in protos:
        proto.running = False
    requests = sum(p.done for p in protos)
    errors: dict[str, int] = {}
    for proto in protos:
        for key, value in proto.errors.items():
            errors[key] = errors.get(key, 0) + value
    for cm in stack:  # our own closing is not an error: counted above, before it
        try:
            await asyncio.wait_for(cm.__aexit__(None, None, None), 5)
        except (asyncio.TimeoutError, ConnectionError):
            pass
    lat = sorted(x for p in protos for x in p.latencies)

    def pct(q: float) -> float | None:
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else None

    return {"requests": requests, "duration_s": elapsed, "errors": errors, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "bytes": sum(p.nbytes for p in protos)}


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--server-name", default="localhost")
    parser.add_argument("--requests", type=int, default=0,
                        help="send exactly this many requests per connection (instead of --duration)")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    result = asyncio.run(main(args))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    cli()
