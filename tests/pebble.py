"""Pebble (Let's Encrypt's test ACME server, Debian package ``pebble``) for the automatic HTTPS tests.

``Pebble`` starts ``pebble`` on free 127.0.0.1 ports with a config written here: its own HTTPS
certificate comes from a trustme CA (the server trusts it through ``--acme-ca-bundle``), its
validation ports (``httpPort``/``tlsPort``) are the server's redirect and HTTPS ports, and
``-dnsserver`` points at :class:`DNSResponder`, a dnslib responder that resolves the test domains to
127.0.0.1. So pebble's VA really connects to the server and checks the challenge answers: no
``PEBBLE_VA_ALWAYS_VALID``. ``PEBBLE_VA_NOSLEEP=1`` and ``PEBBLE_WFE_NONCEREJECT=0`` only remove
pebble's artificial delays and random bad-nonce rejections.

The issuing root is regenerated at every pebble start and served on the management port
(``/roots/0``); :meth:`Pebble.root_pem` fetches it for clients that verify the issued certificate.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Iterator

from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from .conftest import free_port, wait_for_port

PEBBLE = shutil.which("pebble")


class _Resolver(BaseResolver):
    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.queries: list[str] = []

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        self.queries.append(f"{QTYPE[request.q.qtype]} {qname}")
        if request.q.qtype == QTYPE.A and qname in self.names:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=5))
        return reply  # anything else: NOERROR without answers (AAAA, CAA ...)


class DNSResponder:
    """A UDP DNS server on 127.0.0.1 answering A queries for ``names`` with 127.0.0.1."""

    def __init__(self, names: set[str]) -> None:
        self.port = free_port()
        self.resolver = _Resolver({n.lower() for n in names})
        quiet = DNSLogger(logf=lambda text: None)  # the queries are kept in resolver.queries instead
        self.server = DNSServer(self.resolver, port=self.port, address="127.0.0.1", logger=quiet)

    def __enter__(self) -> DNSResponder:
        self.server.start_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.server.server.server_close()


class Pebble:
    def __init__(self, workdir: Path, *, http_port: int, tls_port: int, dns_port: int,
                 validity: int | None = None, port: int | None = None) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.mgmt_port = free_port()
        self.http_port, self.tls_port, self.dns_port = http_port, tls_port, dns_port
        self.validity = validity
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "pebble.log"
        self.ca_bundle = self.dir / "pebble-https-ca.pem"
        if not self.ca_bundle.exists():
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            cert.private_key_pem.write_to_path(str(self.dir / "key.pem"))
            (self.dir / "cert.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
            ca.cert_pem.write_to_path(str(self.ca_bundle))

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> Pebble:
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}", "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(self.dir / "cert.pem"), "privateKey": str(self.dir / "key.pem"),
            "httpPort": self.http_port, "tlsPort": self.tls_port, "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}
        if self.validity is not None:
            config["pebble"]["certificateValidityPeriod"] = self.validity
        path = self.dir / "pebble-config.json"
        path.write_text(json.dumps(config))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
        assert PEBBLE is not None
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PEBBLE, "-config", str(path), "-dnsserver", f"127.0.0.1:{self.dns_port}",
                                      "-strict=false"], stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(self.dir), start_new_session=True)
        log.close()
        wait_for_port("127.0.0.1", self.port, self.proc)
        wait_for_port("127.0.0.1", self.mgmt_port, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def count(self, marker: str) -> int:
        return self.output().count(marker)

    def _get(self, path: str) -> bytes:
        ctx = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}{path}", context=ctx, timeout=10) as r:
            return r.read()

    def root_pem(self) -> bytes:
        """The root that signed this run's certificates (a new one every pebble start)."""
        return self._get("/roots/0")


@contextlib.contextmanager
def pebble_for(tmp_path: Path, names: set[str], *, http_port: int, tls_port: int,
               validity: int | None = None) -> Iterator[tuple[Pebble, DNSResponder]]:
    with DNSResponder(names) as dns:
        pebble = Pebble(tmp_path / "pebble", http_port=http_port, tls_port=tls_port, dns_port=dns.port,
                        validity=validity).start()
        try:
            yield pebble, dns
        finally:
            pebble.stop()
