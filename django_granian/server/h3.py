"""HTTP/3: the UDP listener and its QUIC connections, the asyncio side of aioquic.

:class:`QuicListener` is the datagram protocol of the ``--http3`` UDP socket: it routes each datagram
to its connection by destination connection ID, answers unknown versions with Version Negotiation,
optionally validates addresses with Retry (``--http3-retry``), and drops everything else that does
not parse or does not belong to a connection (garbage, stray short-header packets) without a reply.

:class:`HTTP3Connection` is one QUIC connection: an aioquic :class:`~.quic.ServerQuic` with its
:class:`~.quic.ServerH3`. Requests become :class:`~.h3stream.H3Stream` channels and go through
``state.interface.http(stream, head)`` exactly like HTTP/1.1 requests and HTTP/2 streams (same
request cycles, static file engine, prefix, proxy headers, access log and metrics); RFC 9220
extended CONNECT becomes an :class:`~.h3stream.H3WebSocket`. The limits shared with the other
protocols apply per stream: ``--backpressure`` (a stream waits for a slot, its window held),
``--limit-request-body`` (413, then the stream is stopped), ``--request-body-timeout`` (408), and
``--http3-max-headers-size`` (431 before the header block is buffered).

Transmission is coalesced: whatever the streams of a connection produce while datagrams are
handled (or while an application task runs) is packetised once, in one ``datagrams_to_send`` per
loop iteration (:meth:`QuicListener.flush`), and the connection's timer is re-armed only when it
must fire earlier.

Graceful shutdown (:meth:`HTTP3Connection.shutdown`): GOAWAY with the first stream id not yet
seen, the open streams finish, then CONNECTION_CLOSE(H3_NO_ERROR); new connections are not accepted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

from aioquic.buffer import Buffer
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    ProtocolNegotiated,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.retry import QuicRetryTokenHandler

from ..protocol.errors import ProtocolError
from ..protocol.http2 import FloodGuard, check_trailers, request_head
from ..protocol.http3 import field_section_size, head_frame_length
from .h3stream import H3_NO_ERROR, H3_REQUEST_REJECTED, H3Stream, H3WebSocket
from .quic import SEND_ERRORS, QuicCertificates, ServerH3, ServerQuic, in_flight
from .state import ServerState
from .streams import StreamConnection

logger = logging.getLogger("django_granian.server")

H3_EXCESSIVE_LOAD = 0x107
H3_MESSAGE_ERROR = 0x10E
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_BASE_EXTENSIONS: dict = {"http.response.trailers": {}, "http.response.early_hint": {}, "http.response.pathsend": {}}
MAX_REFUSED = 32  # oversized header sections on one connection before it is closed
_LOG_INTERVAL = 10.0  # seconds between two "dropped datagrams" debug lines


class QuicListener(asyncio.DatagramProtocol):
    """The ``--http3`` UDP socket: datagrams -> connections (see the module docstring)."""

    def __init__(self, state: ServerState, certs: QuicCertificates) -> None:
        config = state.config
        self.state = state
        self.loop = state.loop
        self.certs = certs
        self.transport: Any = None
        self.server_addr: tuple[str, int] | None = None
        self.cids: dict[bytes, HTTP3Connection] = {}
        self.dirty: list[HTTP3Connection] = []
        self.flush_pending = False
        self.retry = QuicRetryTokenHandler() if config.http3_retry else None
        self.max_streams = config.http3_max_concurrent_streams
        self.max_headers = config.http3_max_headers_size
        self.dropped = 0  # datagrams that belonged to nothing
        self.negotiations = 0  # Version Negotiation packets sent
        self._dropped_logged = 0.0

    # -- asyncio.DatagramProtocol ---------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self.transport = transport
        name = transport.get_extra_info("sockname")
        if isinstance(name, tuple):
            self.server_addr = (name[0], name[1])

    def error_received(self, exc: Exception) -> None:
        logger.debug("HTTP/3 UDP socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: Any) -> None:  # type: ignore[override]
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=8)
        except ValueError:
            self._drop(addr, "not a QUIC packet")
            return
        conn = self.cids.get(header.destination_cid)
        if conn is not None:
            conn.receive(data, addr)
            return
        version = header.version
        if version is None:
            self._drop(addr, "short header packet of no connection")
            return
        if len(data) < SMALLEST_MAX_DATAGRAM_SIZE:  # RFC 9000 sections 5.2.2 and 14.1
            self._drop(addr, "long header packet in a datagram under 1200 bytes")
            return
        configuration = self.certs.current()
        if configuration is None or self.state.shutting_down:
            self._drop(addr, "no certificate yet" if configuration is None else "shutting down")
            return
        if version not in configuration.supported_versions:
            if header.packet_type != QuicPacketType.VERSION_NEGOTIATION:
                self.negotiations += 1
                self.transport.sendto(encode_quic_version_negotiation(
                    source_cid=header.destination_cid, destination_cid=header.source_cid,
                    supported_versions=configuration.supported_versions), addr)
            return
        if header.packet_type != QuicPacketType.INITIAL:
            self._drop(addr, "handshake packet of no connection")
            return
        original_dcid = header.destination_cid
        retry_scid = None
        if self.retry is not None:
            if not header.token:
                scid = os.urandom(8)
                token = self.retry.create_token(address=addr, original_destination_connection_id=header.destination_cid,
                                                retry_source_connection_id=scid, now=self.loop.time())
                self.transport.sendto(encode_quic_retry(
                    version=version, source_cid=scid, destination_cid=header.source_cid,
                    original_destination_cid=header.destination_cid, retry_token=token), addr)
                return
            try:
                original_dcid = self.retry.validate_token(address=addr, destination_cid=header.destination_cid,
                                                          token=header.token, now=self.loop.time())
            except ValueError:
                self._drop(addr, "invalid Retry token")
                return
            retry_scid = header.destination_cid
        quic = ServerQuic(configuration=configuration, original_destination_connection_id=original_dcid,
                          retry_source_connection_id=retry_scid, max_streams=self.max_streams)
        conn = HTTP3Connection(self, quic, addr)
        self.cids[header.destination_cid] = conn
        self.cids[quic.host_cid] = conn
        conn.cids.update((header.destination_cid, quic.host_cid))
        conn.receive(data, addr)

    def _drop(self, addr: Any, why: str) -> None:
        self.dropped += 1
        now = time.monotonic()
        if now - self._dropped_logged >= _LOG_INTERVAL:
            self._dropped_logged = now
            logger.debug("HTTP/3: dropped a datagram from %s: %s (%d dropped so far)", addr, why, self.dropped)

    # -- transmission ---------------------------------------------------------------------------------
    def mark(self, conn: HTTP3Connection) -> None:
        """``conn`` has something to send: transmit it at the end of this loop iteration."""
        if not conn.dirty:
            conn.dirty = True
            self.dirty.append(conn)
            if not self.flush_pending:
                self.flush_pending = True
                self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_pending = False
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.dirty = False
            conn.transmit()

    def forget(self, conn: HTTP3Connection) -> None:
        for cid in conn.cids:
            if self.cids.get(cid) is conn:
                del self.cids[cid]
        conn.cids.clear()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class HTTP3Connection(StreamConnection):
    """One QUIC connection carrying HTTP/3 (see the module docstring)."""

    __slots__ = (
        "listener", "server", "loop", "quic", "h3", "streams", "client", "server_addr", "scheme", "peer_trusted",
        "extensions", "cids", "dirty", "closed", "timer", "timer_at", "writers", "head_bytes", "refused",
        "goaway_id", "max_body", "max_headers", "guard", "access_log", "highest_sid", "untracked",
    )

    websocket_class = H3WebSocket

    client: tuple[str, int] | None  # set by ServerState.track
    peer_trusted: bool

    def __init__(self, listener: QuicListener, quic: ServerQuic, addr: Any) -> None:
        server = listener.state
        self.listener = listener
        self.server = server
        self.loop = server.loop
        self.quic = quic
        self.h3: ServerH3 | None = None
        self.streams: dict[int, H3Stream] = {}
        self.server_addr = listener.server_addr
        self.scheme = "https"
        self.extensions: dict = _BASE_EXTENSIONS
        self.cids: set[bytes] = set()
        self.dirty = False
        self.closed = False
        self.untracked = False
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0
        self.writers: set[H3Stream] = set()  # streams waiting in drain() for acknowledgements
        self.head_bytes: dict[int, int] = {}  # request stream -> bytes received before its head decoded
        self.refused: set[int] = set()  # request streams refused before their head was decoded
        self.goaway_id: int | None = None
        self.highest_sid = -4
        self.max_body = server.limits.max_body
        self.max_headers = listener.max_headers
        self.guard = FloodGuard(server.now, reset_burst=max(200, 2 * listener.max_streams))
        self.access_log = server.access_log
        server.track(self, (addr[0], addr[1]), self.server_addr)

    # -- the ``transport`` the worker's shutdown and timeouts see --------------------------------------
    @property
    def transport(self) -> HTTP3Connection:
        return self

    def abort(self) -> None:
        """Forced shutdown: close now (CONNECTION_CLOSE), without waiting for the open streams."""
        self._close(H3_NO_ERROR, "server shutting down")

    def is_closing(self) -> bool:
        return self.closed

    # -- datagrams in, datagrams out ----------------------------------------------------------------------
    def receive(self, data: bytes, addr: Any) -> None:
        self.quic.receive_datagram(data, addr, now=self.loop.time())
        self._events()
        if self.writers:
            self._wake_writers()
        if self.goaway_id is not None and not self.streams:
            self._close_if_idle()  # acknowledgements may have been the last thing it waited for
        self.listener.mark(self)

    def mark(self) -> None:
        self.listener.mark(self)

    def transmit(self) -> None:
        quic = self.quic
        loop = self.loop
        sendto = self.listener.transport.sendto
        for data, addr in quic.datagrams_to_send(now=loop.time()):
            sendto(data, addr)
        timer_at = quic.get_timer()
        timer = self.timer
        if timer_at is None:
            if timer is not None:
                timer.cancel()
                self.timer = None
        elif timer is None or timer_at < self.timer_at:
            # an earlier timer is moved; a later one is left in place: firing early is harmless
            if timer is not None:
                timer.cancel()
            self.timer_at = timer_at
            self.timer = loop.call_at(timer_at, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.quic.handle_timer(now=max(self.timer_at, self.loop.time()))
        self._events()
        self.transmit()

    def _wake_writers(self) -> None:
        for stream in list(self.writers):
            if stream.closed or not stream.writing_paused:
                self.writers.discard(stream)
                stream._wake()

    # -- QUIC events -------------------------------------------------------------------------------------
    def _events(self) -> None:
        quic = self.quic
        event: Any = quic.next_event()
        while event is not None:
            kind = type(event)
            if kind is StreamDataReceived:
                self._stream_data(event)
            elif kind is StreamReset or kind is StopSendingReceived:
                self._stream_gone(event)
            elif kind is ConnectionIdIssued:
                self.listener.cids[event.connection_id] = self
                self.cids.add(event.connection_id)
            elif kind is ConnectionIdRetired:
                if self.listener.cids.get(event.connection_id) is self:
                    del self.listener.cids[event.connection_id]
                self.cids.discard(event.connection_id)
            elif kind is ProtocolNegotiated:
                self._negotiated()
            elif kind is HandshakeCompleted:
                self._handshake_completed()
            elif kind is ConnectionTerminated:
                self._terminated(event)
                return
            event = quic.next_event()

    def _negotiated(self) -> None:
        self.h3 = ServerH3(self.quic, self.max_headers)

    def _handshake_completed(self) -> None:
        certs = self.listener.certs.certs
        current = certs.current
        suite = getattr(getattr(self.quic.tls, "key_schedule", None), "cipher_suite", None)
        self.extensions = {**_BASE_EXTENSIONS, "tls": {
            "server_cert": getattr(current, "server_cert_pem", None), "client_cert_chain": [],
            "client_cert_name": None, "client_cert_error": None, "tls_version": 0x0304,
            "cipher_suite": int(suite) if suite is not None else None}}

    def _stream_data(self, event: StreamDataReceived) -> None:
        h3 = self.h3
        if h3 is None:
            return
        sid = event.stream_id
        if not sid & 3 and sid not in self.streams:  # a client request stream whose head is not decoded yet
            if sid in self.refused:
                return
            if sid > self.highest_sid:
                self.highest_sid = sid
            if not self._head_fits(sid, event.data):
                self._refuse_head(sid)
                return
        for h3_event in h3.handle_event(event):
            kind = type(h3_event)
            if kind is DataReceived:
                self._data(h3_event)  # type: ignore[arg-type]
            elif kind is HeadersReceived:
                self._headers(h3_event)  # type: ignore[arg-type]
            if self.closed:
                return

    def _head_fits(self, sid: int, data: bytes) -> bool:
        """--http3-max-headers-size, before the header block is buffered: the HEADERS frame's declared
        length when the stream starts with it, otherwise the bytes received so far."""
        before = self.head_bytes.get(sid, 0)
        if before == 0:
            length = head_frame_length(data)
            if length is not None and length > self.max_headers:
                return False
        total = before + len(data)
        self.head_bytes[sid] = total
        return total <= self.max_headers + 16

    def _refuse_head(self, sid: int) -> None:
        """A header section over the limit: 431 and STOP_SENDING; the block is never decoded."""
        logger.debug("HTTP/3 stream %d from %s: header section over --http3-max-headers-size %d", sid, self.client,
                     self.max_headers)
        self.head_bytes.pop(sid, None)
        self.refused.add(sid)
        h3 = self.h3
        assert h3 is not None
        if len(self.refused) > MAX_REFUSED:
            self._close(H3_EXCESSIVE_LOAD, "too many oversized header sections")
            return
        body = b"Request header fields too large\n"
        try:
            h3.send_headers(sid, [(b":status", b"431"), *_TEXT, (b"content-length", b"%d" % len(body))])
            h3.send_data(sid, body, True)
            self.quic.stop_stream(sid, H3_REQUEST_REJECTED)
        except SEND_ERRORS:
            pass
        h3.forget(sid)
        self.mark()

    def _headers(self, event: HeadersReceived) -> None:
        sid = event.stream_id
        stream = self.streams.get(sid)
        if stream is not None:  # trailers: validated, then dropped (no place in ASGI/WSGI)
            try:
                check_trailers(event.headers)
            except ProtocolError:
                self._disconnect(stream, H3_MESSAGE_ERROR)
                return
            if event.stream_ended:
                self.on_end(stream)
            return
        self.head_bytes.pop(sid, None)
        if self.goaway_id is not None and sid >= self.goaway_id:
            self._reject(sid, H3_REQUEST_REJECTED)
            return
        if field_section_size(event.headers) > self.max_headers:
            self._refuse_head(sid)
            return
        try:
            head = request_head(event.headers, event.stream_ended, "3")
        except ProtocolError as exc:
            logger.debug("HTTP/3 stream %d from %s: malformed request (%s)", sid, self.client, exc.reason)
            self._reject(sid, H3_MESSAGE_ERROR)
            return
        self.admit(H3Stream(self, sid, head, event.stream_ended), head)

    def _hold_window(self, stream: H3Stream) -> None:
        self.quic.paused.add(stream.stream_id)

    def _reject(self, sid: int, code: int) -> None:
        try:
            self.quic.reset_stream(sid, code)
            self.quic.stop_stream(sid, code)
        except SEND_ERRORS:
            pass
        h3 = self.h3
        if h3 is not None:
            h3.forget(sid)
        self.mark()

    def _data(self, event: DataReceived) -> None:
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        data = event.data
        cycle = stream.cycle
        if cycle is None:
            if type(stream) is H3WebSocket:
                session = stream.session  # type: ignore[attr-defined]
                if session is not None and data and not stream.closed:
                    session.data_received(data)
            elif stream.parked is not None and data:
                stream.parked.append(data)  # waiting for a --backpressure slot (its window is held)
        elif not stream.completed:
            if not self.feed(stream, cycle, data):
                return
        if event.stream_ended:
            self.on_end(stream)

    def _stream_gone(self, event: StreamReset | StopSendingReceived) -> None:
        """RESET_STREAM (the client abandons its request) or STOP_SENDING (it does not want the
        response; aioquic has reset our side already): the app sees a disconnect."""
        h3 = self.h3
        if h3 is not None:
            h3.handle_event(event)
        sid = event.stream_id
        self.head_bytes.pop(sid, None)
        stream = self.streams.get(sid)
        if stream is not None:
            self._gone(stream)
        if type(event) is StreamReset and not self.guard.reset(self.server.now):
            logger.warning("HTTP/3 client %s reset too many streams (rapid reset); closing the connection",
                           self.client)
            self._close(H3_EXCESSIVE_LOAD, "too many stream resets")

    def _disconnect(self, stream: H3Stream, code: int) -> None:
        """Reset ``stream`` with ``code``; its cycle or WebSocket session sees a disconnect."""
        stream.reset(code)
        self._gone(stream)

    def stream_done(self, stream: H3Stream) -> None:
        if stream.remote_done and stream.local_done:
            sid = stream.stream_id
            if self.streams.pop(sid, None) is not None:
                self.quic.paused.discard(sid)
                self.writers.discard(stream)
                if not self.streams and self.goaway_id is not None:
                    self.loop.call_soon(self._close_if_idle)  # after this iteration's transmission

    # -- the end --------------------------------------------------------------------------------------------
    def _terminated(self, event: ConnectionTerminated) -> None:
        """aioquic is done with the connection (closed by either side, idle timeout, protocol error)."""
        if event.error_code not in (0, H3_NO_ERROR):
            logger.debug("HTTP/3 connection from %s closed: error 0x%x %s", self.client, event.error_code,
                         event.reason_phrase)
        self.closed = True
        self.listener.forget(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            self._gone(stream)
        self._untrack()

    def _untrack(self) -> None:
        if not self.untracked:
            self.untracked = True
            self.server.closed(self)

    def _close(self, code: int, reason: str) -> None:
        """Close the connection ourselves: CONNECTION_CLOSE now; aioquic reports the end after its
        closing period (``_terminated``), but the worker stops waiting for this connection at once."""
        if self.closed:
            return
        self.transmit()  # what the streams produced so far goes out before the CONNECTION_CLOSE
        self.quic.close(error_code=code, reason_phrase=reason)
        self.transmit()
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            self._gone(stream)
        self._untrack()

    def _close_if_idle(self) -> None:
        """After GOAWAY: close once no stream is open and everything sent is acknowledged (a
        CONNECTION_CLOSE ends retransmissions, so the last response must have arrived first)."""
        if not self.streams and not self.closed and not in_flight(self.quic):
            self._close(H3_NO_ERROR, "")

    def shutdown(self) -> None:
        """Graceful shutdown: GOAWAY now (streams already opened still finish); close once idle."""
        if self.closed or self.goaway_id is not None:
            return
        self.goaway_id = self.highest_sid + 4
        if self.h3 is not None:
            self.h3.send_goaway(self.goaway_id)
        for stream in list(self.streams.values()):
            if type(stream) is H3WebSocket and stream.session is not None:  # type: ignore[attr-defined]
                stream.session.shutdown()  # type: ignore[attr-defined]  # Close 1001
        self._close_if_idle()
        self.mark()

    def check_timeout(self, now: float) -> None:
        """--request-body-timeout for streams whose body stopped arriving while the app waits for it."""
        if self.closed or not self.streams:
            return
        if self._cancel_stalled_bodies(now):
            self.mark()


async def serve_http3(state: ServerState, sock: socket.socket, certs: QuicCertificates) -> QuicListener:
    """Start the HTTP/3 listener on the bound UDP ``sock`` for the worker's ``state``."""
    _transport, listener = await state.loop.create_datagram_endpoint(lambda: QuicListener(state, certs), sock=sock)
    return listener
