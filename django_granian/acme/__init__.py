"""Automatic HTTPS: certificates from an ACME CA (RFC 8555), obtained and renewed inside the server.

Who does what:

- one **ACME process** (forked by the supervisor, ``manager.acme_main``) obtains and renews the
  certificate with certbot's ``acme`` library and writes it to ``--acme-cache-dir``; it is the only
  process that talks to the CA, so workers never race for an order;
- every **worker** loads the certificate from the cache (``server/tls.py`` reloads it when the file
  changes) and answers the challenges the ACME process published there: ``http-01`` tokens on the
  ``--http-redirect-port`` listener, ``tls-alpn-01`` certificates on the HTTPS port.

This package's ``store`` module needs only the standard library (workers import it); ``client`` and
``manager`` need the ``acme`` extra (``pip install django-granian[acme]``).
"""

from __future__ import annotations

from ..config import Config, ConfigError

__all__ = ["check"]


def check(config: Config) -> None:
    """Start-up checks for --acme-*: the libraries are installed and the cache directory is usable."""
    if not config.acme_domain:
        return
    try:
        import acme.client  # noqa: F401
        import cryptography  # noqa: F401
        import josepy  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--acme-domain needs the acme extra ({exc.name} is missing): "
                          "pip install 'django-granian[acme]'") from None
    from .store import CertStore

    CertStore.from_config(config).prepare()
