"""Sockets handed to us by a process manager: systemd socket activation (``LISTEN_FDS``)."""

from __future__ import annotations

import os
import socket
from typing import MutableMapping

from ..config import ConfigError

SD_LISTEN_FDS_START = 3


def systemd_sockets(environ: MutableMapping[str, str] | None = None) -> list[socket.socket] | None:
    """The listening sockets passed by systemd, or None when this process was not socket-activated.

    Follows sd_listen_fds(3): ``LISTEN_PID`` must be our PID, ``LISTEN_FDS`` counts descriptors from
    3 on. The variables are removed so that the workers and the app's own subprocesses do not see them.
    """
    env = os.environ if environ is None else environ
    raw_fds, raw_pid = env.get("LISTEN_FDS"), env.get("LISTEN_PID")
    if not raw_fds:
        return None
    if raw_pid and raw_pid.strip() != str(os.getpid()):
        return None  # meant for another process (e.g. our parent)
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(name, None)
    try:
        count = int(raw_fds)
    except ValueError:
        raise ConfigError(f"LISTEN_FDS={raw_fds!r} is not a number (systemd socket activation)") from None
    socks = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ConfigError(f"LISTEN_FDS: descriptor {fd} is not a socket ({exc.strerror or exc})") from None
        if sock.type != socket.SOCK_STREAM:
            raise ConfigError(f"LISTEN_FDS: descriptor {fd} is not a stream socket")
        sock.setblocking(False)
        socks.append(sock)
    return socks or None
