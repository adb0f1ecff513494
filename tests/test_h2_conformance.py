"""h2spec (the HTTP/2 conformance suite) against the real server, when an ``h2spec`` binary is available.

h2spec cannot be installed on the development machines (no packaged binary, no Go module proxy); see
docs/http2-tls.md for the offline build that ran all 147 tests. Set ``H2SPEC`` to a binary (or put
``h2spec`` on PATH) to run it here: cleartext prior knowledge and TLS with ALPN, strict mode.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

H2SPEC = os.environ.get("H2SPEC") or shutil.which("h2spec")
pytestmark = pytest.mark.skipif(H2SPEC is None, reason="h2spec not installed (set H2SPEC=/path/to/h2spec)")
APP = ["--interface", "asgi", "h2_apps:app"]


def _run(port: int, *extra: str) -> subprocess.CompletedProcess:
    # "/read-then-hello" answers after the whole request, as h2spec assumes of its target path
    return subprocess.run([H2SPEC, "-h", "127.0.0.1", "-p", str(port), "-P", "/read-then-hello", "-S", *extra],
                          capture_output=True, text=True, timeout=600)


def test_h2spec_prior_knowledge(server_factory):
    with server_factory([*APP, "--http", "2"]) as srv:
        out = _run(srv.port)
    assert out.returncode == 0, out.stdout[-5000:]
    assert " 0 failed" in out.stdout


def test_h2spec_tls_alpn(server_factory, tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    with server_factory([*APP, "--ssl-certificate", str(pem), "--ssl-keyfile", str(pem)]) as srv:
        out = _run(srv.port, "-t", "-k")
    assert out.returncode == 0, out.stdout[-5000:]
    assert " 0 failed" in out.stdout
