"""How a connection comes to speak HTTP/2 (or not): the protocol factory and the three ways in.

- ``--http 2``: every connection is an :class:`~.h2.HTTP2Protocol`;
- TLS with ``--http auto``: :class:`ALPNProtocol` picks ``h2`` or HTTP/1.1 from the ALPN result;
- cleartext ``--http auto``: connections start as HTTP/1.1; :func:`preface_takeover` (registered as
  ``state.h2_preface``) continues one that opens with the HTTP/2 preface (prior knowledge), and
  :func:`h2c_upgrade` (``state.upgrades[b"h2c"]``) answers ``Upgrade: h2c`` (RFC 7540 section 3.2).

The HTTP/1.1 protocol reaches these through those two ``ServerState`` hooks, not imports: they exist
only with ``--http auto`` and the HTTP/1.1 module stays free of HTTP/2.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from ..protocol.http11 import RequestHead
from .h1 import CLOSED, HTTP1Protocol
from .h2 import HTTP2Protocol
from .h2stream import H2Stream
from .state import ServerState
from .tls import TLSHTTP1Protocol


def preface_takeover(h1: Any, data: bytes) -> None:
    """``state.h2_preface``: an ``--http auto`` connection opened with the HTTP/2 preface."""
    HTTP2Protocol(h1.server).take_over(h1, data)


_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
_HOP_HEADERS = frozenset({b"connection", b"upgrade", b"http2-settings", b"keep-alive", b"proxy-connection",
                          b"transfer-encoding", b"te"})


def h2c_upgrade(h1: Any, head: RequestHead) -> bool:
    """``state.upgrades[b"h2c"]``: HTTP/1.1 ``Upgrade: h2c`` (RFC 7540 section 3.2).

    Accepted for body-less requests over cleartext with exactly one ``HTTP2-Settings`` header;
    otherwise False (the request is served over HTTP/1.1, as the RFC allows).
    """
    if h1.scheme != "http" or head.has_body:
        return False
    settings = [value for name, value in head.headers if name == b"http2-settings"]
    if len(settings) != 1:
        return False
    server = h1.server
    proto = HTTP2Protocol(server)
    try:
        proto.conn.initiate_upgrade(settings[0])
    except ValueError:
        return False
    proto.started = True
    transport = h1.transport
    rest, h1.buf = h1.buf, b""
    h1.phase = CLOSED  # the HTTP/1.1 protocol object is done with this connection
    transport.write(_SWITCHING)
    server.connections.discard(h1)
    proto._attach(transport, False)
    transport.set_protocol(proto)
    proto._start()
    headers = [pair for pair in head.headers if pair[0] not in _HOP_HEADERS]
    upgraded = RequestHead(head.method, head.target, head.raw_path, head.query, "2", headers, 0, False, True,
                           False, None, head.host)
    stream = H2Stream(proto, 1, upgraded, True)
    proto.streams[1] = stream
    proto.in_receive = True
    try:
        if server.slots_free <= 0:  # --backpressure: wait for a slot, like any other stream
            stream._park([])
        else:
            proto.dispatch(stream, upgraded)
    finally:
        proto.in_receive = False
    proto._flush()
    if rest:
        proto.data_received(rest)
    return True


def protocol_factory(state: ServerState, tls: bool) -> Callable[[], asyncio.Protocol]:
    """The protocol factory for ``loop.create_server`` according to ``--http`` and TLS, registering
    the HTTP/2 hooks of ``--http auto`` connections."""
    mode = state.config.http
    if mode == "2":
        return lambda: HTTP2Protocol(state)
    if mode == "auto":
        state.h2_preface = preface_takeover
        if not tls:
            state.upgrades[b"h2c"] = h2c_upgrade
    if not tls:
        return lambda: HTTP1Protocol(state)
    if mode == "1":
        return lambda: TLSHTTP1Protocol(state)
    return lambda: ALPNProtocol(state)


class ALPNProtocol(asyncio.Protocol):
    """Picks HTTP/2 or HTTP/1.1 from the ALPN protocol negotiated in the TLS handshake."""

    __slots__ = ("state",)

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        ssl_object = transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        proto: asyncio.Protocol
        if alpn == "h2":
            proto = HTTP2Protocol(self.state)
        else:
            proto = TLSHTTP1Protocol(self.state)
        transport.set_protocol(proto)
        proto.connection_made(transport)
