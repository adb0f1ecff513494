"""TLS: certificate loading errors at start, ALPN (h2 / http/1.1), https scheme, the ASGI tls extension,
client certificates; real server, real clients (httpx, curl, ssl sockets), certificates from trustme."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys

import httpx
import pytest
import trustme

from django_granian.server.tls import rfc4514_name
from tests.conftest import ROOT, free_port

APP = ["--interface", "asgi", "h2_apps:app"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(d / "cert.pem"), append=True)
    server.private_key_pem.write_to_path(str(d / "key.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client = ca.issue_cert("client@example.com", common_name="Test Client")
    client.private_key_and_cert_chain_pem.write_to_path(str(d / "client.pem"))
    other = trustme.CA().issue_cert("127.0.0.1")
    other.private_key_pem.write_to_path(str(d / "other-key.pem"))
    # an encrypted copy of the server key
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), None)
    (d / "enc-key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.BestAvailableEncryption(b"s3cret")))
    (d / "garbage.pem").write_text("not a certificate\n")
    return d


def tls_args(certs, key="key.pem"):
    return ["--ssl-certificate", str(certs / "cert.pem"), "--ssl-keyfile", str(certs / key)]


def run_server(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'apps'}", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "django_granian", *args, "--port", str(free_port())],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))


@pytest.mark.parametrize(("key", "extra", "message"), [
    ("other-key.pem", [], "does not match the certificate in --ssl-certificate"),
    ("enc-key.pem", [], "the private key is encrypted; pass --ssl-keyfile-password"),
    ("enc-key.pem", ["--ssl-keyfile-password", "wrong"], "--ssl-keyfile-password: cannot decrypt"),
    ("garbage.pem", [], "--ssl-keyfile"),
    ("key.pem", ["--ssl-ca", "GARBAGE"], "--ssl-ca"),
])
def test_bad_tls_configuration_fails_at_start(certs, key, extra, message):
    extra = [str(certs / "garbage.pem") if a == "GARBAGE" else a for a in extra]
    out = run_server([*APP, *tls_args(certs, key), *extra])
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stdout + out.stderr


def test_bad_certificate_file_fails_at_start(certs):
    out = run_server([*APP, "--ssl-certificate", str(certs / "garbage.pem"), "--ssl-keyfile",
                      str(certs / "key.pem")])
    assert out.returncode == 2 and "--ssl-certificate" in out.stdout + out.stderr


@pytest.fixture(scope="module")
def tls_srv(certs, tmp_path_factory):
    from tests.conftest import start_server

    with start_server([*APP, *tls_args(certs, "enc-key.pem"), "--ssl-keyfile-password", "s3cret",
                       "--ssl-ca", str(certs / "ca.pem")], tmp_path=tmp_path_factory.mktemp("tls")) as srv:
        yield srv


def trusted(certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs / "ca.pem"))


def url(srv) -> str:
    return f"https://127.0.0.1:{srv.port}"


def test_alpn_h2_and_http11_with_https_scope_and_tls_extension(tls_srv, certs):
    ca = trusted(certs)
    with httpx.Client(http2=True, verify=ca, timeout=15) as client:
        r = client.get(url(tls_srv) + "/scope")
        assert r.http_version == "HTTP/2"
        info = r.json()
        assert info["scheme"] == "https" and info["http_version"] == "2"
        tls = info["tls"]
        assert tls["tls_version"] == 0x0304  # TLS 1.3 (default --ssl-protocol-min)
        assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0
        assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
        assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
        assert tls["client_cert_error"] is None
    with httpx.Client(http2=False, verify=ca, timeout=15) as client:
        r = client.get(url(tls_srv) + "/scope")
        assert r.http_version == "HTTP/1.1"
        info = r.json()
        assert info["scheme"] == "https" and info["tls"]["tls_version"] == 0x0304
        assert "http.response.trailers" in info["extensions"]


def test_client_certificate_reaches_the_app(tls_srv, certs):
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.load_cert_chain(str(certs / "client.pem"))
    with httpx.Client(http2=True, verify=ctx, timeout=15) as client:
        tls = client.get(url(tls_srv) + "/scope").json()["tls"]
    assert tls["client_cert_name"].startswith("CN=Test Client,OU=") and ",O=trustme" in tls["client_cert_name"]
    assert len(tls["client_cert_chain"]) == 1 and "BEGIN CERTIFICATE" in tls["client_cert_chain"][0]


def test_curl_over_tls_with_alpn(tls_srv, certs):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    out = subprocess.run(["curl", "-sS", "-i", "--cacert", str(certs / "ca.pem"), "--http2", url(tls_srv) + "/"],
                         capture_output=True, timeout=20)
    assert out.stdout.startswith(b"HTTP/2 200") and out.stdout.endswith(b"Hello, world!")
    out = subprocess.run(["curl", "-sS", "-i", "-k", "--http1.1", url(tls_srv) + "/"], capture_output=True, timeout=20)
    assert out.stdout.startswith(b"HTTP/1.1 200")


def alpn_of(port: int, offered: list[str], certs, tls12: bool = False) -> tuple[str | None, str]:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.set_alpn_protocols(offered)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.selected_alpn_protocol(), tls.version() or ""


def test_http_modes_restrict_alpn_and_protocol_min(certs, server_factory):
    with server_factory([*APP, *tls_args(certs), "--http", "1", "--ssl-protocol-min", "tls1.2"]) as srv:
        assert alpn_of(srv.port, ["h2", "http/1.1"], certs) == ("http/1.1", "TLSv1.3")
        assert alpn_of(srv.port, ["h2", "http/1.1"], certs, tls12=True) == ("http/1.1", "TLSv1.2")
        with httpx.Client(http2=True, verify=trusted(certs), timeout=15) as client:
            assert client.get(f"https://127.0.0.1:{srv.port}/").http_version == "HTTP/1.1"
    with server_factory([*APP, *tls_args(certs), "--http", "2"]) as srv:
        assert alpn_of(srv.port, ["h2", "http/1.1"], certs)[0] == "h2"
        with pytest.raises(ssl.SSLError):  # TLS 1.2 refused with the default --ssl-protocol-min tls1.3
            alpn_of(srv.port, ["h2"], certs, tls12=True)


def test_client_verify_requires_a_certificate(certs, server_factory):
    with server_factory([*APP, *tls_args(certs), "--ssl-ca", str(certs / "ca.pem"), "--ssl-client-verify"]) as srv:
        with pytest.raises((ssl.SSLError, httpx.HTTPError, OSError)):
            with httpx.Client(verify=trusted(certs), timeout=10) as client:
                client.get(f"https://127.0.0.1:{srv.port}/")
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        ctx.load_cert_chain(str(certs / "client.pem"))
        with httpx.Client(verify=ctx, timeout=15) as client:
            name = json.loads(client.get(f"https://127.0.0.1:{srv.port}/scope").content)["tls"]["client_cert_name"]
            assert name.startswith("CN=Test Client,")


def test_rfc4514_name():
    subject = ((("countryName", "US"),), (("organizationName", "Acme, Inc."),), (("commonName", "#me "),))
    assert rfc4514_name(subject) == "CN=\\#me\\ ,O=Acme\\, Inc.,C=US"


def _serial(port: int, ca: ssl.SSLContext) -> tuple[ssl.SSLSocket, int]:
    from cryptography import x509

    tls = ca.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1")
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return tls, x509.load_der_x509_certificate(der).serial_number


def _get(tls: ssl.SSLSocket) -> bytes:
    tls.sendall(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    data = b""
    while not data.endswith(b"Hello, world!"):
        chunk = tls.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _write_pair(folder, cert) -> None:
    """Replace the files like an operator's renewal tool: key first, then the chain (not atomically)."""
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    (folder / "cert.pem").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))


@pytest.mark.parametrize("workers", [1, 2])
def test_certificate_files_replaced_on_disk_are_picked_up_without_restart(tmp_path, server_factory, workers):
    """(g) of issue 15: new handshakes in every worker get the new certificate within seconds, the
    connection opened before keeps working, no worker is restarted; single process: SIGHUP at once."""
    import signal

    from cryptography import x509

    from tests.core_client import wait_until

    ca = trustme.CA()
    _write_pair(tmp_path, ca.issue_cert("127.0.0.1"))
    client = ssl.create_default_context(cafile=None)
    ca.configure_trust(client)
    args = [*APP, "--ssl-certificate", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem"),
            "--workers", str(workers)]
    with server_factory(args) as srv:
        # every worker has loaded the first certificate (the supervisor's socket accepts before they do;
        # a worker still starting when the files change would start with the new ones: no reload to see)
        ready = "Listening on" if workers == 1 else "Workers are accepting connections"  # (all of them)
        wait_until(srv.logged(ready), what=srv.output)
        old, first = _serial(srv.port, client)
        with old:
            assert _get(old).startswith(b"HTTP/1.1 200 ")
            new = ca.issue_cert("127.0.0.1")
            new_serial = x509.load_pem_x509_certificate(new.cert_chain_pems[0].bytes()).serial_number
            assert new_serial != first
            _write_pair(tmp_path, new)
            if workers == 1:
                srv.proc.send_signal(signal.SIGHUP)

            def all_new() -> bool:  # ten handshakes in a row (spread over the workers) see the new one
                for _ in range(10):
                    tls, serial = _serial(srv.port, client)
                    tls.close()
                    if serial != new_serial:
                        return False
                return True

            wait_until(all_new, timeout=5 if workers == 1 else 10)
            assert _get(old).startswith(b"HTTP/1.1 200 ")  # opened before the reload: still served
            # every worker reloads (each looks once a second): the ten handshakes may all have met one
            wait_until(lambda: srv.output().count("Loaded the TLS certificate") >= workers, timeout=10)
        log = srv.output()
    if workers == 1:
        assert "SIGHUP received: reloading the TLS certificate" in log
    assert log.count("Loaded the TLS certificate") >= workers
    assert "started" not in log.split("Loaded the TLS certificate", 1)[1]  # no worker was (re)started


def test_a_broken_replacement_keeps_the_old_certificate(tmp_path, server_factory):
    from tests.core_client import wait_until

    ca = trustme.CA()
    _write_pair(tmp_path, ca.issue_cert("127.0.0.1"))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    args = [*APP, "--ssl-certificate", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem")]
    with server_factory(args) as srv:
        tls, first = _serial(srv.port, client)
        tls.close()
        (tmp_path / "cert.pem").write_text("truncated\n")
        wait_until(lambda: "Certificate reload failed, still serving the previous certificate" in srv.output(), timeout=5)
        tls, serial = _serial(srv.port, client)
        with tls:
            assert serial == first and _get(tls).startswith(b"HTTP/1.1 200 ")


def test_systemd_socket_activation_with_https_and_redirect_sockets(tmp_path, certs):
    """Two activated sockets: the one on --http-redirect-port redirects, the other serves HTTPS."""
    import os
    import signal

    from tests.conftest import APPS
    from tests.core_client import wait_until

    listeners = []
    for _ in range(2):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        listeners.append(sock)
    https_port, http_port = (s.getsockname()[1] for s in listeners)
    fds = [s.fileno() for s in listeners]

    def as_fd3_and_4() -> None:
        os.dup2(fds[0], 3)
        os.dup2(fds[1], 4)

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(APPS)]), LISTEN_FDS="2")
    args = " ".join([*APP, *tls_args(certs), "--workers", "2", "--port", str(https_port),
                     "--http-redirect-port", str(http_port)])
    script = f'LISTEN_PID=$$ exec "{sys.executable}" -m django_granian {args}'
    log_path = tmp_path / "sd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["/bin/sh", "-c", script], preexec_fn=as_fd3_and_4, pass_fds=[*fds, 3, 4], env=env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
    for sock in listeners:
        sock.close()
    try:
        def https_ok() -> bool:
            try:
                with httpx.Client(verify=trusted(certs), timeout=5) as client:
                    return client.get(f"https://127.0.0.1:{https_port}/").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(https_ok, timeout=30)
        r = httpx.get(f"http://127.0.0.1:{http_port}/x?y=1", timeout=5)
        assert r.status_code == 308 and r.headers["location"] == f"https://127.0.0.1:{https_port}/x?y=1"
        assert "Using 1 socket(s) from systemd socket activation" in log_path.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log_path.read_text()
