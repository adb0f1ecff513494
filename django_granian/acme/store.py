"""The ACME cache directory: account key, certificates, and the challenges being answered.

Layout of ``--acme-cache-dir`` (directories 0700, files 0600, every file written to a temporary
name and renamed, so a reader never sees half a file)::

    accounts/<directory hash>/key.pem        the ACME account key (per CA directory URL)
    accounts/<directory hash>/account.json   the account URL the CA gave us
    certs/<first domain>/bundle.pem          private key + certificate chain: what workers load
    certs/<first domain>/fullchain.pem       the chain alone (for other tools)
    challenges/http-01/<token>               key authorization served at /.well-known/acme-challenge/
    challenges/tls-alpn-01/<domain>.pem      validation certificate + key (RFC 8737)

The key and the chain are in one file so that replacing it is one atomic rename: a worker never
loads a new key with an old certificate. Only the standard library is used here (workers import it).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass

from ..config import Config, ConfigError

HTTP01_PREFIX = b"/.well-known/acme-challenge/"


@dataclass(frozen=True)
class CertStore:
    root: str
    domains: tuple[str, ...]
    directory: str = ""

    @classmethod
    def from_config(cls, config: Config) -> CertStore:
        root = os.path.abspath(os.path.expanduser(config.acme_cache_dir))
        return cls(root, tuple(config.acme_domain), config.acme_directory)

    # -- paths ---------------------------------------------------------------------------------------
    @property
    def cert_dir(self) -> str:
        return os.path.join(self.root, "certs", self.domains[0])

    @property
    def bundle(self) -> str:
        return os.path.join(self.cert_dir, "bundle.pem")

    @property
    def account_dir(self) -> str:
        digest = hashlib.sha256(self.directory.encode()).hexdigest()[:16]
        return os.path.join(self.root, "accounts", digest)

    @property
    def http01_dir(self) -> str:
        return os.path.join(self.root, "challenges", "http-01")

    @property
    def alpn_dir(self) -> str:
        return os.path.join(self.root, "challenges", "tls-alpn-01")

    def alpn_path(self, domain: str) -> str:
        return os.path.join(self.alpn_dir, domain + ".pem")

    # -- start-up --------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the directories (0700) and check we can write there; ConfigError naming the option."""
        try:
            for path in (self.root, self.cert_dir, self.account_dir, self.http01_dir, self.alpn_dir):
                os.makedirs(path, mode=0o700, exist_ok=True)
            mode = stat.S_IMODE(os.stat(self.root).st_mode)
            if mode & 0o077:
                os.chmod(self.root, 0o700)  # keys inside: nobody else may list or read it
            probe = os.path.join(self.root, ".write-test")
            write_private(probe, b"")
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(f"--acme-cache-dir {self.root!r}: not a writable directory "
                              f"({exc.strerror or exc})") from None

    # -- challenges ------------------------------------------------------------------------------------
    def put_http01(self, token: str, key_authorization: str) -> None:
        write_private(os.path.join(self.http01_dir, _safe(token)), key_authorization.encode("ascii"), mode=0o644)

    def put_alpn(self, domain: str, pem: bytes) -> None:
        write_private(self.alpn_path(domain), pem)

    def clear_challenges(self) -> None:
        for folder in (self.http01_dir, self.alpn_dir):
            try:
                names = os.listdir(folder)
            except OSError:
                continue
            for name in names:
                try:
                    os.unlink(os.path.join(folder, name))
                except OSError:
                    pass


def http01_answer(root: str, raw_path: bytes) -> bytes | None:
    """The key authorization for ``/.well-known/acme-challenge/<token>`` if that challenge is being
    answered (the file exists), else None."""
    token = raw_path[len(HTTP01_PREFIX):]
    if not token or not all(c in _TOKEN_BYTES for c in token):
        return None
    try:
        with open(os.path.join(root, "challenges", "http-01", token.decode("ascii")), "rb") as fh:
            return fh.read()
    except OSError:
        return None


_TOKEN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _safe(token: str) -> str:
    if not token or not all(ord(c) in _TOKEN_BYTES for c in token):
        raise ValueError(f"unexpected characters in ACME token {token!r}")
    return token


def write_private(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, fsync, rename)."""
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
