"""Automatic HTTPS end to end: the real server against pebble (Let's Encrypt's test CA, Debian 2.4.0).

Pebble's VA really validates: it resolves the test domain through :class:`tests.pebble.DNSResponder`
(127.0.0.1) and connects to the server's HTTPS port (tls-alpn-01) or redirect port (http-01). The
clients verify the issued certificate against the root pebble generated for the run.

(a) first start obtains a certificate (tls-alpn-01 and http-01); verified handshake + 200, h2 by ALPN
(b) a restart with the cache makes no new order (pebble's log) and serves at once
(c) renewal replaces the certificate; a keep-alive connection opened before still works
(d) the redirect port: 308 keeping path and query; challenge path answered there (access log); HSTS
(e) CA unreachable: handshakes refused with a log line, the error logged and retried until pebble
    is up; an expired cache with the CA down keeps serving the old certificate with a warning
(f) bad --acme-* values: one-line start-up errors naming the option, no traceback
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from .conftest import ROOT, free_port, start_server
from .core_client import wait_until
from .pebble import PEBBLE, DNSResponder, Pebble, pebble_for

needs_pebble = pytest.mark.skipif(PEBBLE is None, reason="pebble is not installed (apt-get install pebble; "
                                "scripts/install-system-deps.sh does it)")
DOMAIN = "app.test"
APP = ["--interface", "asgi", "h2_apps:app"]


def acme_args(pebble: Pebble, cache: Path, *extra: str) -> list[str]:
    return [*APP, "--acme-domain", DOMAIN, "--acme-email", "ops@app.test", "--acme-directory", pebble.directory,
            "--acme-ca-bundle", str(pebble.ca_bundle), "--acme-cache-dir", str(cache), *extra]


def handshake(port: int, root: bytes | None, alpn: list[str] | None = None) -> tuple[ssl.SSLSocket, int]:
    """A TLS connection for DOMAIN (verified against ``root`` unless None) and the leaf's serial."""
    if root is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = ssl.create_default_context(cadata=root.decode())
    ctx.set_alpn_protocols(alpn or ["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        tls = ctx.wrap_socket(raw, server_hostname=DOMAIN)
    except BaseException:
        raw.close()
        raise
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return tls, x509.load_der_x509_certificate(der).serial_number


def get(tls: ssl.SSLSocket, path: str = "/", close: bool = False) -> bytes:
    extra = "connection: close\r\n" if close else ""
    tls.sendall(f"GET {path} HTTP/1.1\r\nhost: {DOMAIN}\r\n{extra}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"Hello, world!"):
        chunk = tls.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def verified_serial(port: int, root: bytes) -> int | None:
    """The serial of a verified certificate for DOMAIN, or None while there is none."""
    try:
        tls, serial = handshake(port, root)
    except (ssl.SSLError, OSError):
        return None
    with tls:
        assert get(tls, close=True).startswith(b"HTTP/1.1 200 ")
    return serial


@needs_pebble
@pytest.mark.parametrize("challenge", ["tls-alpn-01", "http-01"])
def test_first_start_obtains_a_certificate_then_a_restart_uses_the_cache(tmp_path, challenge):
    https, http = free_port(), free_port()
    cache = tmp_path / "cache"
    with pebble_for(tmp_path, {DOMAIN}, http_port=http, tls_port=https) as (pebble, dns):
        root = pebble.root_pem()
        args = acme_args(pebble, cache, "--acme-challenge", challenge, "--http-redirect-port", str(http),
                         "--access-log")
        with start_server(args, port=https, tmp_path=tmp_path) as srv:
            serial = wait_until(lambda: verified_serial(https, root), timeout=30)
            tls, _ = handshake(https, root, ["h2", "http/1.1"])
            with tls:
                assert tls.selected_alpn_protocol() == "h2"
            log = srv.output()
        assert f"ACME: answering {challenge} for {DOMAIN}" in log
        assert f"ACME: obtained a certificate for {DOMAIN} (serial {serial:x}" in log
        hex_serial = f"{serial:x}"  # pebble logs the serial's bytes in hex: a leading 0 when the digits are odd
        assert f"Issued certificate serial {hex_serial.zfill(len(hex_serial) + len(hex_serial) % 2)}" in pebble.output()
        assert f"A {DOMAIN}" in dns.resolver.queries  # pebble's VA resolved the name through our DNS
        if challenge == "http-01":  # pebble fetched the token from the redirect listener
            assert any("/.well-known/acme-challenge/" in line and " 200 " in line for line in log.splitlines())
        # cache layout and permissions: keys are private
        bundle = cache / "certs" / DOMAIN / "bundle.pem"
        assert oct(bundle.stat().st_mode & 0o777) == "0o600"
        assert oct(cache.stat().st_mode & 0o777) == "0o700"
        assert not list((cache / "challenges").rglob("*.*")) and not list((cache / "challenges" / "http-01").iterdir())

        # (b) a restart with a valid cache: no ACME request at all, the certificate is served at once
        orders = pebble.count("POST /order-plz")
        requests = pebble.count(" -> calling handler()")
        assert orders == 1
        with start_server(args, port=https, tmp_path=tmp_path) as srv:
            assert verified_serial(https, root) == serial
            time.sleep(1.5)  # the ACME process had its chance to (wrongly) talk to the CA
            log = srv.output()
        assert pebble.count("POST /order-plz") == orders and pebble.count(" -> calling handler()") == requests
        assert "ordering" not in log and "TLS handshake for" not in log


@needs_pebble
def test_renewal_replaces_the_certificate_and_keeps_open_connections(tmp_path):
    https = free_port()
    validity = 15  # seconds; renewal is due 5 s after issuance (a third of the lifetime: the earliest)
    renew_before = (validity - 1) / 86400
    with pebble_for(tmp_path, {DOMAIN}, http_port=free_port(), tls_port=https, validity=validity) as (pebble, _):
        root = pebble.root_pem()
        args = acme_args(pebble, tmp_path / "cache", "--acme-renew-before", f"{renew_before:.8f}")
        with start_server(args, port=https, tmp_path=tmp_path) as srv:
            first = wait_until(lambda: verified_serial(https, root), timeout=30)
            old, old_serial = handshake(https, root)
            with old:
                assert old_serial == first
                assert get(old).startswith(b"HTTP/1.1 200 ")
                second = wait_until(lambda: (s := verified_serial(https, root)) != first and s, timeout=30)
                assert get(old).startswith(b"HTTP/1.1 200 ")  # the keep-alive connection lives on
                assert get(old).startswith(b"HTTP/1.1 200 ")
            log = srv.output()
        assert f"renewing the certificate for {DOMAIN}" in log
        assert f"serial {second:x}" in log and pebble.count("POST /order-plz") >= 2
        assert "Supervisor" in log and "worker-1" not in log.split("renewing", 1)[1]  # no worker restarted


@needs_pebble
def test_redirect_port_keeps_path_and_query_and_answers_only_challenges(tmp_path):
    https, http = free_port(), free_port()
    with pebble_for(tmp_path, {DOMAIN}, http_port=http, tls_port=https) as (pebble, _):
        root = pebble.root_pem()
        args = acme_args(pebble, tmp_path / "cache", "--http-redirect-port", str(http), "--hsts",
                         "31536000; includeSubDomains", "--workers", "2")
        with start_server(args, port=https, tmp_path=tmp_path):
            wait_until(lambda: verified_serial(https, root), timeout=30)
            with socket.create_connection(("127.0.0.1", http), timeout=10) as sock:
                sock.sendall(b"GET /a/b%20c?x=1&y=%2F HTTP/1.1\r\nhost: app.test:80\r\n\r\n"
                             b"POST /form HTTP/1.1\r\nhost: APP.test\r\ncontent-length: 3\r\n\r\nabc"
                             b"GET /.well-known/acme-challenge/nope HTTP/1.1\r\nhost: app.test\r\n\r\n"
                             b"GET / HTTP/1.0\r\n\r\n")
                data = b""
                while data.count(b"HTTP/1.") < 4:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            responses = data.split(b"HTTP/1.1 ")[1:]
            assert responses[0].startswith(b"308 ")
            assert f"location: https://{DOMAIN}:{https}/a/b%20c?x=1&y=%2F\r\n".encode() in responses[0]
            assert responses[1].startswith(b"308 ") and f"https://{DOMAIN}:{https}/form\r\n".encode() in responses[1]
            assert responses[2].startswith(b"404 ")  # the challenge path is never redirected
            assert responses[3].startswith(b"308 ") and f"https://{DOMAIN}:{https}/\r\n".encode() in responses[3]
            assert b"strict-transport-security" not in data
            tls, _ = handshake(https, root)
            with tls:
                assert b"\r\nstrict-transport-security: max-age=31536000; includeSubDomains\r\n" in get(tls, close=True)
            import httpx  # HTTP/2 carries the header too

            ctx = ssl.create_default_context(cadata=root.decode())
            transport = httpx.HTTPTransport(http2=True, verify=ctx)
            with httpx.Client(transport=transport, timeout=10) as client:
                # connect to 127.0.0.1 but present SNI / Host for the certificate's name
                r = client.get(f"https://127.0.0.1:{https}/", extensions={"sni_hostname": DOMAIN},
                               headers={"host": DOMAIN})
            assert r.http_version == "HTTP/2" and r.headers["strict-transport-security"] == \
                "max-age=31536000; includeSubDomains"


@needs_pebble
def test_unreachable_ca_refuses_handshakes_retries_and_an_expired_cache_keeps_serving(tmp_path):
    https, ca_port = free_port(), free_port()
    cache = tmp_path / "cache"
    with DNSResponder({DOMAIN}) as dns:
        pebble = Pebble(tmp_path / "pebble", http_port=free_port(), tls_port=https, dns_port=dns.port,
                        validity=4, port=ca_port)
        args = acme_args(pebble, cache)
        try:
            # no certificate and no CA: the HTTPS port refuses handshakes, the ACME process keeps trying
            with start_server(args, port=https, tmp_path=tmp_path) as srv:
                wait_until(lambda: "ACME order for app.test failed: cannot reach the CA" in srv.output(), timeout=30)
                with pytest.raises(ssl.SSLError):  # the alert, or EOF: the event loop aborts without flushing it
                    handshake(https, None)
                wait_until(lambda: "TLS handshake for app.test refused: no certificate yet" in srv.output(), timeout=5)
                assert "retrying in 10s" in srv.output() and "Traceback" not in srv.output()
                pebble.start()  # the CA comes back: the next retry succeeds
                root = pebble.root_pem()
                first = wait_until(lambda: verified_serial(https, root), timeout=40)
            pebble.stop()
            bundle = x509.load_pem_x509_certificates((cache / "certs" / DOMAIN / "bundle.pem").read_bytes())[0]
            assert bundle.serial_number == first
            time.sleep(max(0.0, bundle.not_valid_after_utc.timestamp() - time.time() + 0.5))

            # an expired certificate in the cache and the CA down: it is still served, with a warning
            with start_server(args, port=https, tmp_path=tmp_path) as srv:
                tls, serial = handshake(https, None)
                with tls:
                    assert serial == first and get(tls, close=True).startswith(b"HTTP/1.1 200 ")
                wait_until(lambda: "still serving the EXPIRED certificate for app.test" in srv.output(), timeout=30)
                assert "cannot reach the CA" in srv.output()
        finally:
            pebble.stop()


def run_server(args: list[str]) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'apps'}", "PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run([sys.executable, "-m", "django_granian", *APP, *args, "--port", str(free_port())],
                          capture_output=True, text=True, timeout=30, env=env, cwd=str(ROOT))


@pytest.mark.parametrize(("args", "message"), [
    (["--acme-domain", "not a host"], "--acme-domain 'not'"),
    (["--acme-domain", "exa_mple.com"], "--acme-domain 'exa_mple.com': not a host name"),
    (["--acme-domain", "192.0.2.7"], "--acme-domain '192.0.2.7': an IP address"),
    (["--acme-domain", "app.test", "--acme-email", "ops.example.com"], "--acme-email 'ops.example.com' is not an "
                                                                       "e-mail address"),
    (["--acme-domain", "app.test", "--acme-directory", "http://ca.test/dir"], "--acme-directory "
                                                                                "'http://ca.test/dir' must be an https"),
    (["--acme-domain", "app.test", "--acme-cache-dir", "{file}/cache"], "--acme-cache-dir"),
    (["--acme-domain", "app.test", "--acme-challenge", "http-01"], "--acme-challenge http-01 needs "
                                                                     "--http-redirect-port"),
    (["--acme-domain", "app.test", "--uds", "/tmp/x.sock"], "--acme-domain cannot be combined with --uds"),
    (["--http-redirect-port", "8080"], "--http-redirect-port redirects to HTTPS"),
    (["--acme-domain", "app.test", "--hsts", "forever"], "--hsts 'forever'"),
])
def test_bad_acme_options_are_one_line_startup_errors(tmp_path, args, message):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = run_server([a.replace("{file}", str(blocker)) for a in args])
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert message in text, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith(("Error:", "[ERROR]"))]
    assert len(errors) == 1 and message in errors[0], text


def test_cache_directory_is_created_private(tmp_path):
    from django_granian.acme.store import CertStore
    from django_granian.config import Config

    root = tmp_path / "acme"
    root.mkdir(mode=0o755)
    store = CertStore.from_config(Config(acme_domain=["app.test"], acme_cache_dir=str(root)).validate())
    store.prepare()
    assert oct(root.stat().st_mode & 0o777) == "0o700"
    for sub in ("certs/app.test", "challenges/http-01", "challenges/tls-alpn-01"):
        assert oct((root / sub).stat().st_mode & 0o777) == "0o700", sub
    assert os.listdir(root / "certs" / "app.test") == []


@pytest.mark.parametrize(("raw", "value"), [
    ("31536000", "max-age=31536000"),
    ("max-age=60; includeSubDomains", "max-age=60; includeSubDomains"),
    ("max-age=60;includesubdomains;PRELOAD", "max-age=60; includeSubDomains; preload"),
    ("63072000, includeSubDomains, preload", "max-age=63072000; includeSubDomains; preload"),
    ("includeSubDomains", None), ("max-age=-1", None), ("max-age=60; secure", None), ("", None),
    ("max-age=1; max-age=2", None),
])
def test_hsts_values(raw, value):
    from django_granian.config import ConfigError, hsts_value

    if value is None:
        with pytest.raises(ConfigError, match="--hsts"):
            hsts_value(raw)
    else:
        assert hsts_value(raw) == value


@pytest.mark.parametrize(("name", "ok"), [
    ("example.com", "example.com"), ("WWW.Example.COM.", "www.example.com"), ("xn--bcher-kva.example", None),
    ("a-b.c-d.example", None), ("-a.example", False), ("a-.example", False), ("a..example", False),
    ("localhost", False), ("*.example.com", False), ("10.0.0.1", False), ("[::1]", False),
    ("exa mple.com", False), ("a" * 64 + ".example", False), ("ünï.example", False),
])
def test_acme_domain_names(name, ok):
    from django_granian.config import ConfigError, _hostname

    if ok is False:
        with pytest.raises(ConfigError, match="--acme-domain"):
            _hostname(name)
    else:
        assert _hostname(name) == (ok or name)


@needs_pebble
def test_a_failed_validation_is_logged_with_the_problem_document(tmp_path):
    """The name resolves nowhere (the test DNS has no A record for it): pebble's VA fails the
    challenge and the server logs the CA's problem document (type, detail, domain), then retries."""
    https = free_port()
    with pebble_for(tmp_path, {DOMAIN}, http_port=free_port(), tls_port=https) as (pebble, dns):
        args = [a if a != DOMAIN else "nowhere.test" for a in acme_args(pebble, tmp_path / "cache")]
        with start_server(args, port=https, tmp_path=tmp_path) as srv:
            line = wait_until(lambda: next((ln for ln in srv.output().splitlines()
                                            if "ACME order for nowhere.test failed" in ln), None),
                              timeout=30, what="the failed order")
            assert "tls-alpn-01 for nowhere.test: urn:ietf:params:acme:error:" in line, line
            assert "retrying in 10s" in line and "Traceback" not in srv.output()
        assert "A nowhere.test" in dns.resolver.queries
