"""One ACME order, on certbot's ``acme`` library: account, order, challenges, finalize, store.

The protocol (JWS, nonces, polling, problem documents) is the library's. What it no longer ships is
the ``tls-alpn-01`` challenge type (removed in acme 5), so :class:`TLSALPN01` registers it on the
library's own base classes, and :func:`alpn_certificate` builds the RFC 8737 validation certificate
with ``cryptography``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import josepy as jose
from acme import challenges, crypto_util, errors, messages
from acme import client as acme_client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from .. import __version__
from ..config import Config
from .store import CertStore, read, write_private

logger = logging.getLogger("django_granian.acme")

NETWORK_TIMEOUT = 30  # seconds per HTTP request to the CA
ORDER_TIMEOUT = 90  # seconds for the CA to validate and issue
ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier, RFC 8737 section 6.1
ALPN_PROTOCOL = "acme-tls/1"


# -- tls-alpn-01 (RFC 8737) on the library's base classes ---------------------------------------------
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The (empty) answer POSTed to the challenge URL: "ready, validate now"."""

    typ = "tls-alpn-01"


class TLSALPN01(challenges.KeyAuthorizationChallenge):
    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: jose.JWK, **unused: Any) -> str:
        return self.key_authorization(account_key)


if "tls-alpn-01" not in challenges.Challenge.TYPES:
    challenges.ChallengeResponse.register(TLSALPN01Response)
    challenges.Challenge.register(TLSALPN01)


def alpn_certificate(domain: str, key_authorization: str) -> bytes:
    """Self-signed validation certificate for ``domain`` with the critical acmeIdentifier extension
    (SHA-256 of the key authorization), key first: one PEM file for ``load_cert_chain``."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True)
            .sign(key, hashes.SHA256()))
    return _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# -- what is in the cache -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CertInfo:
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: int
    names: frozenset[str]

    def covers(self, domains: tuple[str, ...]) -> bool:
        return set(domains) <= self.names

    def expired(self, now: datetime.datetime) -> bool:
        return now >= self.not_after

    def renew_at(self, days_before: float) -> datetime.datetime:
        """``days_before`` expiry, but never before a third of the lifetime has passed: a window longer
        than the certificate's life (short-lived certificates) must not renew in a loop."""
        window = min(datetime.timedelta(days=days_before), (self.not_after - self.not_before) * 2 / 3)
        return self.not_after - window


def cert_info(pem: bytes) -> CertInfo | None:
    """The first certificate of a PEM bundle (key and chain in any order); None when there is none."""
    try:
        cert = x509.load_pem_x509_certificates(pem)[0]
    except (ValueError, IndexError):
        return None
    try:
        names = frozenset(n.lower() for n in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = frozenset()
    return CertInfo(cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number, names)


def cached_certificate(store: CertStore) -> CertInfo | None:
    pem = read(store.bundle)
    return cert_info(pem) if pem else None


# -- failures, with the CA's problem document ------------------------------------------------------------
class OrderFailed(Exception):
    """An order that did not produce a certificate; the message says why (problem type, detail, domain)."""


def describe(exc: BaseException) -> str:
    """A one-line account of an ACME failure, with the RFC 8555 problem document when there is one."""
    if isinstance(exc, messages.Error):
        return _problem(exc)
    if isinstance(exc, errors.ValidationError):
        parts = []
        for authzr in exc.failed_authzrs:
            domain = authzr.body.identifier.value
            for challb in authzr.body.challenges:
                if challb.error is not None:
                    parts.append(f"{challb.chall.typ} for {domain}: {_problem(challb.error)}")
            if not any(c.error is not None for c in authzr.body.challenges):
                parts.append(f"authorization for {domain} is {authzr.body.status.name}")
        return "; ".join(parts) or str(exc)
    if isinstance(exc, errors.IssuanceError):
        return _problem(exc.error)
    if isinstance(exc, errors.TimeoutError):
        return f"the CA did not finish the order within {ORDER_TIMEOUT}s"
    try:
        import requests

        if isinstance(exc, requests.exceptions.RequestException):
            return f"cannot reach the CA: {type(exc).__name__}: {exc}"
    except ImportError:  # pragma: no cover - requests comes with acme
        pass
    return f"{type(exc).__name__}: {exc}"


def _problem(err: messages.Error) -> str:
    text = f"{err.typ}: {err.detail or err.title or err.description or ''}".rstrip(": ")
    if err.identifier is not None:
        text += f" (identifier {err.identifier.value})"
    for sub in err.subproblems or ():
        text += f"; {_problem(sub)}"
    return text


# -- the order ------------------------------------------------------------------------------------------------
class Issuer:
    """Talks to the CA for one configuration. ``obtain()`` runs a complete order (blocking)."""

    def __init__(self, config: Config, store: CertStore) -> None:
        self.config = config
        self.store = store
        self.challenge = config.acme_challenge_type

    def _network(self, key: jose.JWK) -> acme_client.ClientNetwork:
        alg = jose.ES256 if isinstance(key, jose.JWKEC) else jose.RS256
        net = acme_client.ClientNetwork(key, alg=alg, user_agent=f"django-granian/{__version__}",
                                        timeout=NETWORK_TIMEOUT)
        if self.config.acme_ca_bundle:
            net.verify_ssl = self.config.acme_ca_bundle  # type: ignore[assignment]  # requests' verify= path
        return net

    def _account_key(self) -> jose.JWK:
        path = os.path.join(self.store.account_dir, "key.pem")
        pem = read(path)
        if pem is None:
            pem = _key_pem(ec.generate_private_key(ec.SECP256R1()))
            write_private(path, pem)
        return jose.JWK.load(pem)

    def _client(self) -> acme_client.ClientV2:
        key = self._account_key()
        net = self._network(key)
        directory = acme_client.ClientV2.get_directory(self.config.acme_directory, net)
        client = acme_client.ClientV2(directory, net)
        account_file = os.path.join(self.store.account_dir, "account.json")
        saved = read(account_file)
        if saved is not None:
            net.account = messages.RegistrationResource.from_json(json.loads(saved))
            return client
        email = self.config.acme_email
        new = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True) if email else \
            messages.NewRegistration.from_data(terms_of_service_agreed=True)
        try:
            regr = client.new_account(new)
        except errors.ConflictError as exc:  # the key is known to the CA: look the account up
            regr = client.query_registration(messages.RegistrationResource(uri=exc.location,
                                                                           body=messages.Registration()))
        net.account = regr
        write_private(account_file, json.dumps(regr.to_json()).encode())
        logger.info("ACME account %s registered with %s", regr.uri, self.config.acme_directory)
        return client

    def obtain(self) -> CertInfo:
        """Order a certificate for the configured domains and store it; OrderFailed on any failure."""
        store = self.store
        try:
            client = self._client()
            key = ec.generate_private_key(ec.SECP256R1())  # a fresh key for every certificate
            key_pem = _key_pem(key)
            csr = crypto_util.make_csr(key_pem, list(store.domains))
            order = client.new_order(csr)
            for authzr in order.authorizations:
                if authzr.body.status == messages.STATUS_VALID:
                    continue  # the CA reused a valid authorization
                self._answer(client, authzr)
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_TIMEOUT)
            order = client.poll_and_finalize(order, deadline)
        except Exception as exc:  # noqa: BLE001 - every failure is reported with its problem document
            raise OrderFailed(describe(exc)) from exc
        finally:
            store.clear_challenges()
        fullchain = order.fullchain_pem.encode("ascii")
        info = cert_info(fullchain)
        if info is None:
            raise OrderFailed("the CA returned no certificate")
        write_private(os.path.join(store.cert_dir, "fullchain.pem"), fullchain)
        write_private(store.bundle, key_pem + fullchain)  # last: workers reload when this file changes
        return info

    def _answer(self, client: acme_client.ClientV2, authzr: messages.AuthorizationResource) -> None:
        domain = authzr.body.identifier.value
        wanted = TLSALPN01 if self.challenge == "tls-alpn-01" else challenges.HTTP01
        challb = next((c for c in authzr.body.challenges if isinstance(c.chall, wanted)), None)
        if challb is None:
            offered = ", ".join(c.chall.typ for c in authzr.body.challenges)
            raise OrderFailed(f"the CA does not offer {self.challenge} for {domain} (offered: {offered}); "
                              "choose another --acme-challenge")
        account_key = client.net.key
        response, key_authorization = challb.response_and_validation(account_key)
        if isinstance(challb.chall, TLSALPN01):
            self.store.put_alpn(domain, alpn_certificate(domain, key_authorization))
        else:
            self.store.put_http01(challb.chall.encode("token"), key_authorization)
        logger.info("ACME: answering %s for %s", challb.chall.typ, domain)
        client.answer_challenge(challb, response)
