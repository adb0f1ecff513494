"""TLS with the standard ``ssl`` module: the server context, ALPN, and the ASGI ``tls`` extension.

:func:`make_ssl_context` is called once at start-up and turns every problem with the ``--ssl-*``
files (missing, unreadable, not PEM, key not matching the certificate, wrong or missing password,
bad CA/CRL) into a :class:`~django_granian.config.ConfigError` naming the option, so the server
exits with status 2 and a message the user can act on instead of failing on the first handshake.
"""

from __future__ import annotations

import ssl
from typing import Any

from ..config import Config, ConfigError
from .h1 import HTTP1Protocol

_VERSIONS = {"tls1.2": ssl.TLSVersion.TLSv1_2, "tls1.3": ssl.TLSVersion.TLSv1_3}
_VERSION_CODES = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# TLS 1.2 suites acceptable for HTTP/2 (RFC 9113 section 9.2.2: AEAD with ephemeral key exchange)
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20"


def alpn_protocols(http: str) -> list[str]:
    if http == "1":
        return ["http/1.1"]
    if http == "2":
        return ["h2"]
    return ["h2", "http/1.1"]


def make_ssl_context(config: Config, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """The server context for ``--ssl-certificate``/``--ssl-keyfile`` (or ``cert``/``key``: a renewed
    ACME bundle holds both in ``cert``); every problem is a ConfigError naming the option."""
    if cert is None:
        cert, key = config.ssl_certificate, config.ssl_keyfile
        if not cert:
            raise ConfigError("--ssl-certificate is required for TLS")
        if not key:
            raise ConfigError("--ssl-certificate needs --ssl-keyfile")
    cert_pem = _read_pem(cert, "--ssl-certificate", b"-----BEGIN CERTIFICATE-----")
    key_pem = _read_pem(key or cert, "--ssl-keyfile", b"PRIVATE KEY-----")
    encrypted = b"ENCRYPTED" in key_pem
    password = config.ssl_keyfile_password
    if encrypted and not password:
        raise ConfigError(f"--ssl-keyfile {key}: the private key is encrypted; pass --ssl-keyfile-password")

    ctx = new_context(config)

    def _password() -> bytes:
        return (password or "").encode()

    try:
        ctx.load_cert_chain(cert, key, password=_password)
    except ssl.SSLError as exc:
        text = str(exc)
        if "KEY_VALUES_MISMATCH" in text or "key values mismatch" in text:
            raise ConfigError(f"--ssl-keyfile {key} does not match the certificate in --ssl-certificate "
                              f"{cert}") from None
        if encrypted:
            raise ConfigError(f"--ssl-keyfile-password: cannot decrypt --ssl-keyfile {key} (wrong password?)"
                              ) from None
        raise ConfigError(f"--ssl-certificate {cert} / --ssl-keyfile {key}: cannot load the certificate and "
                          f"key: {_reason(exc)}") from None
    except OSError as exc:
        raise ConfigError(f"--ssl-certificate {cert} / --ssl-keyfile {key}: {exc.strerror or exc}") from None

    # what the ASGI tls extension needs, computed once
    first = cert_pem.split(b"-----END CERTIFICATE-----", 1)[0]
    start = first.find(b"-----BEGIN CERTIFICATE-----")
    ctx.server_cert_pem = (first[start:] + b"-----END CERTIFICATE-----\n").decode("ascii")  # type: ignore[attr-defined]
    return ctx


def new_context(config: Config, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A server context with the configured versions, ciphers, ALPN and client verification, and no
    certificate yet."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[config.ssl_protocol_min]
    ctx.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.set_ciphers(_TLS12_CIPHERS)  # TLS 1.3 suites are configured separately and all acceptable
    if config.ssl_ca:
        _read_pem(config.ssl_ca, "--ssl-ca", b"-----BEGIN CERTIFICATE-----")
        try:
            ctx.load_verify_locations(cafile=config.ssl_ca)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"--ssl-ca {config.ssl_ca}: cannot load the CA bundle: {_reason(exc)}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED if config.ssl_client_verify else ssl.CERT_OPTIONAL
    for crl in config.ssl_crl:
        _read_pem(crl, "--ssl-crl", b"-----BEGIN X509 CRL-----")
        try:
            ctx.load_verify_locations(cafile=crl)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"--ssl-crl {crl}: cannot load the revocation list: {_reason(exc)}") from None
    if config.ssl_crl:
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    ctx.set_alpn_protocols(alpn or alpn_protocols(config.http))
    ctx.cipher_ids = {c["name"]: c["id"] & 0xFFFF for c in ctx.get_ciphers()}  # type: ignore[attr-defined]
    return ctx


def _read_pem(path: str, option: str, marker: bytes) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror or exc}") from None
    if marker not in data:
        what = marker.strip(b"-").decode()
        raise ConfigError(f"{option} {path}: not a PEM file (no {what!r} block)")
    return data


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def tls_extension(transport: Any) -> dict | None:
    """The ASGI ``tls`` extension for a TLS connection (https://asgi.readthedocs.io/en/latest/specs/tls.html)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    ctx = ssl_object.context
    cipher = ssl_object.cipher()
    cipher_id = getattr(ctx, "cipher_ids", {}).get(cipher[0]) if cipher else None
    chain: list[str] = []
    name = None
    try:
        der = ssl_object.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        der = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        info = ssl_object.getpeercert()
        if info:
            name = rfc4514_name(info.get("subject", ()))
    return {
        "server_cert": getattr(ctx, "server_cert_pem", None),
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,  # unverifiable client certificates fail the handshake
        "tls_version": _VERSION_CODES.get(ssl_object.version() or ""),
        "cipher_suite": cipher_id,
    }


_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
          "stateOrProvinceName": "ST", "localityName": "L", "streetAddress": "STREET", "domainComponent": "DC",
          "userId": "UID", "emailAddress": "emailAddress", "serialNumber": "serialNumber"}


def rfc4514_name(subject: Any) -> str:
    """``getpeercert()['subject']`` -> an RFC 4514 distinguished name string (most specific first)."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{_SHORT.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(rdns)


def _escape(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;=' or (ch == "#" and i == 0) or (ch == " " and i in (0, len(value) - 1)):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


class TLSHTTP1Protocol(HTTP1Protocol):
    """HTTP/1.1 over TLS: the plain HTTP/1.1 protocol plus the per-connection ASGI extensions."""

    __slots__ = ()

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ext = tls_extension(transport)
        self.extensions = {"http.response.trailers": {}, "http.response.early_hint": {},
                           "http.response.pathsend": {}, "tls": ext} if ext is not None else None
