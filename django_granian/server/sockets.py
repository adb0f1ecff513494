"""Listening sockets: TCP (IPv4/IPv6), Unix domain sockets, inherited descriptors."""

from __future__ import annotations

import os
import socket
import stat
from typing import Any

from ..config import Config, ConfigError


def bind_sockets(config: Config) -> list[socket.socket]:
    """Bind the listening socket(s) described by the config; errors are ConfigError with a clear message."""
    if config.fd is not None:
        try:
            sock = socket.socket(fileno=config.fd)
        except OSError as exc:
            raise ConfigError(f"--fd {config.fd}: not a usable socket ({exc.strerror or exc})") from None
        sock.setblocking(False)
        return [sock]
    if config.uds:
        return [bind_unix(config.uds, config.uds_permissions, config.backlog)]
    return [bind_tcp(config.host, config.port, config.backlog)]


def bind_redirect(config: Config, inherited: list[socket.socket] | None = None) -> list[socket.socket]:
    """The ``--http-redirect-port`` listener: taken from ``inherited`` (systemd socket activation: the
    socket bound to that port is removed from the list) or bound on --host; [] when not configured."""
    port = config.http_redirect_port
    if port is None:
        return []
    for sock in list(inherited or ()):
        name = sock.getsockname()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and name[1] == port:
            assert inherited is not None
            inherited.remove(sock)
            return [sock]
    return [bind_tcp(config.host, port, config.backlog)]


def bind_tcp(host: str, port: int, backlog: int, reuse_port: bool = False) -> socket.socket:
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind to {host}:{port}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def bind_unix(path: str, permissions: int | None, backlog: int) -> socket.socket:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)  # a stale socket from a previous run
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        if permissions is not None:
            os.chmod(path, permissions)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind to unix socket {path!r}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


def describe_socket(sock: socket.socket, scheme: str = "http") -> str:
    addr = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"{scheme}+unix://{addr}"
    if sock.family == socket.AF_INET6:
        return f"{scheme}://[{addr[0]}]:{addr[1]}"
    return f"{scheme}://{addr[0]}:{addr[1]}"


def listening_lines(sockets: list[socket.socket], redirect: list[socket.socket], quic: list[socket.socket],
                    tls: bool) -> list[str]:
    """``Listening on http://127.0.0.1:8000``, one line per listener (https with TLS); the redirect and
    HTTP/3 listeners say so after the URL (with --workers N, one UDP socket per worker on one port)."""
    addresses = [describe_socket(s, "https" if tls else "http") for s in sockets]
    addresses += [describe_socket(s) + " (redirect to https)" for s in redirect]
    if quic:
        addresses.append(describe_socket(quic[0], "https") + (
            f" (HTTP/3, UDP, {len(quic)} sockets: one per worker)" if len(quic) > 1 else " (HTTP/3, UDP)"))
    return [f"Listening on {address}" for address in addresses]


def transport_peers(transport: Any) -> tuple[tuple[str, int] | None, Any, bool]:
    """``(client, server_addr, tls)`` of an accepted connection, as ASGI's ``client``/``server``
    want them: ``(host, port)`` tuples, a Unix socket's path as ``(path, None)``, None when unknown."""
    client = None
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        client = (peer[0], peer[1])
    server_addr: Any = None
    sock = transport.get_extra_info("sockname")
    if isinstance(sock, tuple) and len(sock) >= 2:
        server_addr = (sock[0], sock[1])
    elif isinstance(sock, str) and sock:
        server_addr = (sock, None)
    return client, server_addr, transport.get_extra_info("sslcontext") is not None
