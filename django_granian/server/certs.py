"""Certificates that change while the server runs: hot reload, ACME certificates, tls-alpn-01.

One :class:`ServerCertificates` per worker owns the ``ssl.SSLContext`` given to the HTTPS listener
(``base``) and a ``current`` context holding the certificate to present. Its ``sni_callback`` runs at
the start of every handshake and points the connection at ``current`` (``SSLObject.context = ...``,
OpenSSL's ``SSL_set_SSL_CTX``), so:

- **reload**: every second the worker stats the certificate files (``--ssl-certificate`` and
  ``--ssl-keyfile``, or the ACME cache's bundle); when they changed, a new context is loaded and
  becomes ``current``. New handshakes get the new certificate at once; open connections keep the
  context they were made with, so nothing is cut and no worker restarts. A pair that does not load
  (e.g. the certificate was replaced before the key) keeps the old context and is retried as soon
  as the files change again. ``reload()`` does the same at once (SIGHUP).
- **no certificate yet** (ACME, first start): the handshake is refused with a ``handshake_failure``
  alert and a log line, never a self-signed stand-in.
- **tls-alpn-01** (RFC 8737): while the ACME process has a validation certificate published for a
  name, handshakes for that name (SNI) get a context with that certificate and ALPN ``acme-tls/1``.
  Python's ``ssl`` does not show the client's ALPN offer at SNI time, so during those seconds any
  new handshake for that name gets the validation certificate; with ``--http-redirect-port`` the
  default challenge is http-01, which has no such window (docs/howto/https.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from typing import Any

from ..config import Config, ConfigError
from .tls import make_ssl_context, new_context

logger = logging.getLogger("django_granian")

CHECK_INTERVAL = 1.0  # seconds between checks of the certificate files
REFUSED_LOG_INTERVAL = 10.0  # at most one "handshake refused" line per this many seconds
ALPN_CHALLENGE = "acme-tls/1"

Signature = tuple[tuple[int, int, int], ...]


def _stat(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class ServerCertificates:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.acme = bool(config.acme_domain)
        self.alpn_dir: str | None = None
        self.domains: frozenset[str] = frozenset(config.acme_domain)
        if self.acme:
            from ..acme.store import CertStore

            store = CertStore.from_config(config)
            self.files: tuple[str, ...] = (store.bundle,)
            if config.acme_challenge_type == "tls-alpn-01":
                self.alpn_dir = store.alpn_dir
        else:
            assert config.ssl_certificate and config.ssl_keyfile
            self.files = (config.ssl_certificate, config.ssl_keyfile)
        self.signature = self._signature()
        self.current: ssl.SSLContext | None
        if self.acme:
            self.current = self._load(quiet=True)
        else:
            self.current = make_ssl_context(config)  # start-up: bad files are a ConfigError
        self.base = self.current if self.current is not None else new_context(config)
        self.base.sni_callback = self._sni
        self.reloads = 0
        self._challenges: dict[str, tuple[tuple[int, int, int], ssl.SSLContext]] = {}
        self._refused_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        if self.current is None:
            logger.warning("No certificate for %s in the ACME cache yet: HTTPS handshakes are refused until the "
                           "ACME process has obtained one", ", ".join(config.acme_domain))

    # -- loading ------------------------------------------------------------------------------------
    def _signature(self) -> Signature:
        return tuple(_stat(path) for path in self.files)

    def _load(self, quiet: bool = False) -> ssl.SSLContext | None:
        try:
            if self.acme:
                if not os.path.exists(self.files[0]):
                    return None
                return make_ssl_context(self.config, self.files[0], None)
            return make_ssl_context(self.config)
        except ConfigError as exc:
            if not quiet:
                logger.warning("Certificate reload failed, still serving the previous certificate: %s", exc)
            return None

    def check(self) -> bool:
        """Reload when the files changed since the last look; True when a new certificate is in use."""
        signature = self._signature()
        if signature == self.signature:
            return False
        self.signature = signature
        return self.reload()

    def reload(self) -> bool:
        ctx = self._load()
        if ctx is None:
            return False
        ctx.sni_callback = self._sni
        self.current = ctx
        self.reloads += 1
        logger.info("Loaded the TLS certificate from %s (new handshakes use it; open connections keep theirs)",
                    self.files[0])
        return True

    # -- the periodic check ---------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timer = loop.call_later(CHECK_INTERVAL, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        try:
            self.check()
        except Exception:  # noqa: BLE001 - a reload problem must never stop the checks
            logger.exception("certificate check failed")
        if self._loop is not None:
            self._timer = self._loop.call_later(CHECK_INTERVAL, self._tick)

    # -- every handshake --------------------------------------------------------------------------------
    def _sni(self, sslobj: Any, server_name: str | None, ctx: ssl.SSLContext) -> int | None:
        if self.alpn_dir is not None and server_name is not None:
            challenge = self._challenge(server_name.lower())
            if challenge is not None:
                sslobj.context = challenge
                return None
        current = self.current
        if current is None and self.check():  # the first certificate just arrived: no need to wait a tick
            current = self.current
        if current is None:
            now = time.monotonic()
            if now - self._refused_at >= REFUSED_LOG_INTERVAL:
                self._refused_at = now
                logger.warning("TLS handshake for %s refused: no certificate yet (the ACME order for %s is in "
                               "progress; see the ACME log lines)", server_name or "(no SNI)",
                               ", ".join(self.config.acme_domain))
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
        if current is not ctx:
            sslobj.context = current
        return None

    def _challenge(self, name: str) -> ssl.SSLContext | None:
        """The tls-alpn-01 context for ``name`` while the ACME process publishes one."""
        if name not in self.domains or self.alpn_dir is None:
            return None
        path = os.path.join(self.alpn_dir, name + ".pem")
        sig = _stat(path)
        if sig == (0, 0, 0):
            self._challenges.pop(name, None)
            return None
        cached = self._challenges.get(name)
        if cached is not None and cached[0] == sig:
            return cached[1]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols([ALPN_CHALLENGE])
        try:
            ctx.load_cert_chain(path)
        except (OSError, ssl.SSLError) as exc:
            logger.warning("tls-alpn-01 certificate for %s not usable: %s", name, exc)
            return None
        self._challenges[name] = (sig, ctx)
        logger.info("Answering the tls-alpn-01 challenge for %s", name)
        return ctx
