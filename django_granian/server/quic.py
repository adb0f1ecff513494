"""QUIC for HTTP/3, on aioquic: configuration, certificates, and the aioquic behaviour we adjust.

aioquic does QUIC (RFC 9000/9001/9002: packets, TLS 1.3, loss recovery, congestion control) and
HTTP/3 framing with QPACK (RFC 9114/9204, through pylsqpack). This module is the one place that
knows more of aioquic than its documented API; each of these is a subclass hook or attribute read
that aioquic 1.x has kept stable, and ``tests/test_http3.py`` exercises every one of them:

- :class:`ServerQuic` replaces aioquic's receive flow control for request streams. aioquic doubles a
  stream's window whenever half of it has *arrived*, whatever the application did with the data, so
  a client could push a whole upload into memory ahead of a slow app. Here a stream's window is what
  aioquic has handed over plus ``STREAM_WINDOW``, and it is not raised at all while the request cycle
  holds more than its high-water mark (``paused``: the channel's ``body_pressure``).
- ``MAX_STREAMS`` for client request streams is ``--http3-max-concurrent-streams`` (aioquic: 128).
- :class:`ServerH3` announces ``SETTINGS_MAX_FIELD_SECTION_SIZE`` (``--http3-max-headers-size``),
  sends GOAWAY (aioquic has no API for it), and forgets the HTTP/3 state of a stream we refused.
- :func:`buffered` is how many response bytes of a stream aioquic still holds (unsent or unacked):
  the channel's ``writing_paused`` and ``drain()``; :func:`in_flight`, the bytes of the whole
  connection not acknowledged yet (graceful close waits for 0).

Certificates: :class:`QuicCertificates` builds the ``QuicConfiguration`` new connections use from
the same files as the TCP listener's :class:`~.certs.ServerCertificates` (``--ssl-*`` or the ACME
cache) and follows its reloads, so a renewed certificate reaches HTTP/3 handshakes too. No session
tickets are issued: aioquic accepts 0-RTT data with every resumed session, and 0-RTT requests can be
replayed by an attacker (RFC 9001 section 9.2), so HTTP/3 connections always do a full handshake.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from ..config import Config, ConfigError

logger = logging.getLogger("django_granian")

try:  # the http3 extra
    from aioquic.buffer import encode_uint_var
    from aioquic.h3.connection import FrameType, H3Connection, Setting, encode_frame
    from aioquic.h3.connection import ProtocolError as H3ProtocolError
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.packet import QuicFrameType

    HAVE_AIOQUIC = True
    # what aioquic raises when a stream cannot take more (reset or finished meanwhile)
    SEND_ERRORS: tuple[type[BaseException], ...] = (ValueError, AssertionError, H3ProtocolError)
except ImportError:  # pragma: no cover - checked by check_available()
    HAVE_AIOQUIC = False
    QuicConnection = H3Connection = object  # type: ignore[misc,assignment]
    SEND_ERRORS = (ValueError, AssertionError)

STREAM_WINDOW = 256 * 1024  # request body bytes a client may send beyond what the app has taken
CONNECTION_WINDOW = 4 * 1024 * 1024  # initial connection-level window (aioquic raises it as data arrives)
MAX_UNI_STREAMS = 16  # client unidirectional streams (HTTP/3 needs 3: control, QPACK encoder and decoder)
_MAX_STREAM_DATA_CAPACITY = 1 + 8 + 8  # frame type + stream id + limit, as aioquic reserves them


def check_available() -> None:
    """Start-up check for ``--http3``: aioquic is installed."""
    if not HAVE_AIOQUIC:
        raise ConfigError("--http3 needs the http3 extra (aioquic is missing): pip install 'django-granian[http3]'")


def check_config(config: Config) -> None:
    """What HTTP/3 cannot do that the TCP listener is configured to do."""
    if config.ssl_client_verify:
        raise ConfigError("--http3 cannot be combined with --ssl-client-verify: aioquic's server side does not "
                          "request client certificates, so HTTP/3 would let clients in without one")


class ServerQuic(QuicConnection):  # type: ignore[misc,valid-type]
    """A server-side aioquic connection with consumption-based receive windows (module docstring)."""

    def __init__(self, *args: Any, max_streams: int = 100, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paused: set[int] = set()  # request streams whose window is held (body_pressure)
        bidi = self._local_max_streams_bidi
        bidi.value = bidi.sent = max_streams
        uni = self._local_max_streams_uni
        uni.value = uni.sent = MAX_UNI_STREAMS

    def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        sid = stream.stream_id
        if sid & 3:  # not a client request stream (control and QPACK streams): aioquic's own policy
            super()._write_stream_limits(builder, space, stream)
            return
        if sid in self.paused or not stream.max_stream_data_local:
            return
        limit = stream.receiver.starting_offset() + STREAM_WINDOW  # what aioquic handed over, plus the window
        # raise it once a quarter of the window is used, not for every packet
        if limit - stream.max_stream_data_local < STREAM_WINDOW // 4:
            return
        stream.max_stream_data_local = limit
        buf = builder.start_frame(QuicFrameType.MAX_STREAM_DATA, capacity=_MAX_STREAM_DATA_CAPACITY,
                                  handler=self._on_max_stream_data_delivery, handler_args=(stream,))
        buf.push_uint_var(sid)
        buf.push_uint_var(limit)
        stream.max_stream_data_local_sent = limit


def buffered(quic: Any, sid: int) -> int:
    """Response bytes of stream ``sid`` that aioquic holds (not sent yet, or sent and not acknowledged)."""
    stream = quic._streams.get(sid)
    return 0 if stream is None else len(stream.sender._buffer)


def in_flight(quic: Any) -> int:
    """Bytes sent and not yet acknowledged (aioquic's loss recovery keeps the count)."""
    return int(quic._loss.bytes_in_flight)


class ServerH3(H3Connection):  # type: ignore[misc,valid-type]
    """aioquic's HTTP/3 connection with a header size limit in SETTINGS, GOAWAY and stream forgetting."""

    def __init__(self, quic: Any, max_field_section_size: int) -> None:
        self.max_field_section_size = max_field_section_size  # read by _get_local_settings during __init__
        super().__init__(quic)

    def _get_local_settings(self) -> dict[int, int]:
        settings = super()._get_local_settings()
        settings[Setting.MAX_FIELD_SECTION_SIZE] = self.max_field_section_size
        return settings

    def send_goaway(self, stream_id: int) -> None:
        """GOAWAY (RFC 9114 section 5.2): requests on streams >= ``stream_id`` will not be processed."""
        control = self._local_control_stream_id
        assert control is not None  # opened by H3Connection.__init__
        self._quic.send_stream_data(control, encode_frame(FrameType.GOAWAY, encode_uint_var(stream_id)))

    def forget(self, sid: int) -> None:
        """Stop decoding stream ``sid`` (refused before its head was decoded): drop its buffer and tell
        the peer's QPACK encoder the header block will never be read (RFC 9204 section 4.4.2)."""
        self._stream.pop(sid, None)
        try:
            data = self._decoder.cancel_stream(sid)
        except Exception:  # noqa: BLE001 - nothing to cancel
            return
        decoder = self._local_decoder_stream_id
        if data and decoder is not None:
            self._quic.send_stream_data(decoder, data)


# -- certificates ---------------------------------------------------------------------------------
def load_certificate(cert_path: str, key_path: str | None, password: str | None) -> tuple[Any, list, Any]:
    """``(certificate, chain, private key)`` from PEM files (``key_path`` None: the key is in ``cert_path``,
    as in the ACME cache's bundle)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(cert_path, "rb") as fh:
        cert_pem = fh.read()
    key_pem = cert_pem
    if key_path is not None:
        with open(key_path, "rb") as fh:
            key_pem = fh.read()
    chain = x509.load_pem_x509_certificates(cert_pem)
    start = key_pem.find(b"-----BEGIN")
    while start >= 0 and b"PRIVATE KEY-----" not in key_pem[start:start + 40]:
        start = key_pem.find(b"-----BEGIN", start + 1)
    if start < 0:
        raise ValueError(f"no private key in {key_path or cert_path}")
    key = serialization.load_pem_private_key(key_pem[start:], password.encode() if password else None)
    return chain[0], chain[1:], key


class QuicCertificates:
    """The ``QuicConfiguration`` of new connections, following the TCP listener's certificate reloads."""

    def __init__(self, config: Config, certs: Any) -> None:
        self.config = config
        self.certs = certs  # server/certs.py ServerCertificates
        self.seen = -1
        self.configuration: Any = None

    def _build(self) -> Any:
        config = self.config
        files = self.certs.files
        cert, key = files[0], (files[1] if len(files) > 1 else None)
        certificate, chain, private_key = load_certificate(cert, key, config.ssl_keyfile_password)
        quic = QuicConfiguration(is_client=False, alpn_protocols=["h3"], idle_timeout=config.http3_idle_timeout,
                                 max_stream_data=STREAM_WINDOW, max_data=CONNECTION_WINDOW,
                                 congestion_control_algorithm="cubic")
        quic.certificate = certificate
        quic.certificate_chain = chain
        quic.private_key = private_key
        return quic

    def current(self) -> Any:
        """The configuration for a new connection, or None while there is no certificate (ACME's first
        order): the Initial is then dropped and the client falls back to TCP, where the handshake is
        refused with a log line (``certs.py``)."""
        certs = self.certs
        if certs.current is None:
            return None
        if certs.reloads != self.seen:
            self.seen = certs.reloads
            try:
                self.configuration = self._build()
            except (OSError, ValueError, TypeError) as exc:
                logger.warning("HTTP/3: cannot load the certificate for QUIC, %s: %s", "keeping the previous one"
                               if self.configuration is not None else "HTTP/3 handshakes are refused", exc)
        return self.configuration


def http3_port(config: Config, tcp_sockets: list[socket.socket]) -> int:
    """--http3-port, else the port of the HTTPS listener (the one bound, so --port 0 works too)."""
    if config.http3_port is not None:
        return config.http3_port
    for sock in tcp_sockets:
        name = sock.getsockname()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return int(name[1])
    return config.port


def bind_udp(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """The UDP socket of the HTTP/3 listener (``reuse_port``: one per worker, see docs/howto/http3.md)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--http3: cannot bind UDP {host}:{port}: {exc.strerror or exc}") from None
    size_buffers(sock)
    sock.setblocking(False)
    return sock


UDP_BUFFER = 4 << 20  # bytes asked for the UDP listener's receive and send buffers


def size_buffers(sock: socket.socket, size: int = UDP_BUFFER) -> None:
    """Ask for big UDP socket buffers: a QUIC peer sends bursts of datagrams, and one dropped for a
    full buffer costs a loss-recovery round and a halved congestion window. The default (212 KB on
    Linux) dropped datagrams with 64 concurrent 24 KB responses on localhost. The kernel caps the
    size at ``net.core.rmem_max``/``wmem_max`` (raise those for a busy host, as for quic-go or nginx)."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            pass
