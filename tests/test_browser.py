"""A real browser against the real server: headless Chromium, HTTPS, HTTP/2, static files, WebSocket.

The testproject is started with ``manage.py granian --ssl-certificate ... --ssl-keyfile ...
--access-log`` (certificates from trustme). Chromium (driven over the DevTools protocol) loads:

- the admin login page over HTTP/2: it must render *with* the admin stylesheet (computed styles and
  a screenshot whose colours match the stylesheet's, not a blank or unstyled page), and the CSS must
  come from the server's static engine (Django itself does not serve static files with DEBUG off);
  the server's access log must list those static requests;
- /ws-echo/: the page's JavaScript opens a WebSocket to /ws/echo and writes the echo into the DOM.

Skipped only when no Chromium is installed (scripts/install-system-deps.sh installs Debian's).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .browser.cdp import Browser, find_chromium
from .browser.png import decode
from .conftest import ROOT, start_server

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; "
                       "scripts/install-system-deps.sh does it in CI)"),
    pytest.mark.timeout(240),
]
MANAGE = ROOT / "testproject" / "manage.py"


def css_variables(css: str) -> dict[str, str]:
    """The custom properties of the first ``:root`` block (the admin's light theme), resolved."""
    block = re.search(r":root\s*\{(.*?)\}", css, re.S)
    assert block, "no :root block in the admin stylesheet"
    raw = dict(re.findall(r"(--[\w-]+)\s*:\s*([^;]+);", block.group(1)))

    def resolve(value: str, depth: int = 0) -> str:
        m = re.fullmatch(r"var\((--[\w-]+)\)", value.strip())
        return resolve(raw[m.group(1)], depth + 1) if m and depth < 10 else value.strip()

    return {name: resolve(value) for name, value in raw.items()}


def hex_rgb(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def css_rgb(text: str) -> tuple[int, int, int]:
    m = re.match(r"rgba?\((\d+),\s*(\d+),\s*(\d+)", text)
    assert m, text
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def test_css_helpers() -> None:
    css = ":root { --a: #417690; --b: var(--a); --c: #fff; } @media (prefers-color-scheme: dark) { :root { --a: #000; } }"
    assert css_variables(css) == {"--a": "#417690", "--b": "#417690", "--c": "#fff"}
    assert hex_rgb("#fff") == (255, 255, 255) and hex_rgb("#417690") == (65, 118, 144)
    assert css_rgb("rgb(65, 118, 144)") == (65, 118, 144)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    chain, key = folder / "chain.pem", folder / "key.pem"
    chain.write_bytes(b"".join(pem.bytes() for pem in cert.cert_chain_pems))
    key.write_bytes(cert.private_key_pem.bytes())
    return str(chain), str(key)


def test_admin_over_https_h2_with_static_css_and_websocket_echo(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    assert CHROMIUM is not None
    static_root = tmp_path / "static"
    env = {"TESTPROJECT_STATIC_ROOT": str(static_root), "TESTPROJECT_DB": str(tmp_path / "db.sqlite3"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    collect = subprocess.run([sys.executable, str(MANAGE), "collectstatic", "--noinput", "-v0"],
                             env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
    assert collect.returncode == 0, collect.stderr
    admin_vars = css_variables((static_root / "admin" / "css" / "base.css").read_text())
    header_rgb = hex_rgb(admin_vars["--header-bg"])
    page_rgb = hex_rgb(admin_vars["--darkened-bg"])  # body.login background (login.css)

    cert, key = tls_files
    args = ["--ssl-certificate", cert, "--ssl-keyfile", key, "--access-log", "--workers", "1"]
    with start_server(args, cmd=[sys.executable, str(MANAGE), "granian"], env=env, tmp_path=tmp_path) as server:
        base = f"https://127.0.0.1:{server.port}"
        browser = Browser(CHROMIUM, tmp_path / "profile", tmp_path / "chromium.log")
        try:
            browser.send("Network.enable")
            browser.send("Page.enable")
            browser.send("Emulation.setEmulatedMedia",
                         features=[{"name": "prefers-color-scheme", "value": "light"}])

            # --- the admin login page, with its CSS, over HTTP/2 -----------------------------------
            browser.navigate(f"{base}/admin/login/")
            responses = browser.responses()
            page = next(r for r in responses if r["url"].startswith(f"{base}/admin/login/"))
            assert page["status"] == 200, page
            assert page["protocol"] == "h2", f"expected HTTP/2 via ALPN, got {page['protocol']}"
            css = [r for r in responses if "/static/admin/css/" in r["url"]]
            assert css, f"the login page loaded no admin CSS: {[r['url'] for r in responses]}"
            for resp in css:
                headers = {k.lower(): v for k, v in resp["headers"].items()}
                assert resp["status"] == 200 and resp["protocol"] == "h2", resp["url"]
                assert resp["mimeType"] == "text/css"
                assert "etag" in headers, f"{resp['url']}: no ETag: not the server's static engine?"
                assert "immutable" in headers.get("cache-control", ""), f"{resp['url']}: hashed name, not immutable"
            assert browser.evaluate("document.styleSheets.length") >= len(css)
            assert css_rgb(browser.evaluate("getComputedStyle(document.getElementById('header')).backgroundColor")) \
                == header_rgb
            assert css_rgb(browser.evaluate("getComputedStyle(document.body).backgroundColor")) == page_rgb
            assert browser.evaluate("document.querySelector('input[name=username]') !== null")

            shot = base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"])
            (tmp_path / "admin-login.png").write_bytes(shot)
            image = decode(shot)
            colours = image.colours()
            area = image.width * image.height
            assert len(colours) >= 10, f"screenshot looks blank: {len(colours)} colours"
            assert colours[bytes(header_rgb)] >= area // 100, "the admin header colour is missing: CSS not applied"
            assert image.pixel(5, image.height - 5) == page_rgb, "page background is not the admin's"
            assert colours.most_common(1)[0][0] in (bytes(page_rgb), bytes((255, 255, 255)))

            # --- a page whose JavaScript echoes a message over a WebSocket ------------------------
            token = secrets.token_hex(8)
            browser.navigate(f"{base}/ws-echo/?message={token}")
            status = browser.poll("document.getElementById('ws-status').textContent",
                                  lambda v: v == "echoed" or v == "error" or str(v).startswith("closed"),
                                  timeout=30)
            assert status == "echoed", f"WebSocket status {status!r}; server log:\n{server.output()[-3000:]}"
            assert browser.evaluate("document.getElementById('ws-result').textContent") == token
            ws_js = [r for r in browser.responses() if "/static/demo/ws_echo" in r["url"]]
            assert ws_js and ws_js[-1]["status"] == 200
        finally:
            browser.close()
        server.stop()
        log = server.output()

    # --- the server's access log lists the static requests it served ------------------------------
    for resp in css:
        path = resp["url"][len(base):]
        lines = [line for line in log.splitlines() if f" {path} " in line]
        assert lines, f"{path} is not in the access log:\n{log[-3000:]}"
        assert any(re.search(r"HTTP/2(\.0)?\" 200\b", line) for line in lines), lines


def _spki_hash(pem: bytes) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what --ignore-certificate-errors-spki-list takes."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.mark.skipif(shutil.which("pebble") is None, reason="pebble is not installed (scripts/install-system-deps.sh)")
def test_https_page_on_a_pebble_certificate_after_a_redirect_from_http(tmp_path: Path) -> None:
    """Issue 15: `manage.py granian` with settings.GRANIAN acme_* options gets a certificate from pebble
    (http-01, validated by pebble through the redirect port), and Chromium, with no
    --ignore-certificate-errors but pebble's issuing CA key in --ignore-certificate-errors-spki-list,
    follows http:// -> 308 -> https:// and renders the admin login page over HTTP/2 with HSTS."""
    import json
    import ssl

    from .conftest import free_port
    from .core_client import wait_until
    from .pebble import pebble_for

    assert CHROMIUM is not None
    domain = "shop.test"
    https, http = free_port(), free_port()
    with pebble_for(tmp_path, {domain}, http_port=http, tls_port=https) as (pebble, _):
        granian = {"acme_domain": [domain], "acme_email": "ops@shop.test", "acme_directory": pebble.directory,
                   "acme_ca_bundle": str(pebble.ca_bundle), "acme_cache_dir": str(tmp_path / "acme"),
                   "http_redirect_port": http, "hsts": "60", "workers": 1}
        env = {"TESTPROJECT_DB": str(tmp_path / "db.sqlite3"), "TESTPROJECT_GRANIAN": json.dumps(granian),
               "TESTPROJECT_ALLOWED_HOSTS": domain, "TESTPROJECT_STATIC_ROOT": str(tmp_path / "static"),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        collect = subprocess.run([sys.executable, str(MANAGE), "collectstatic", "--noinput", "-v0"],
                                 env={**os.environ, **env}, capture_output=True, text=True, timeout=180)
        assert collect.returncode == 0, collect.stderr
        with start_server([], cmd=[sys.executable, str(MANAGE), "granian"], env=env, tmp_path=tmp_path,
                          port=https) as server:
            root = pebble.root_pem()
            client = ssl.create_default_context(cadata=root.decode())

            def issued() -> bool:
                try:
                    with socket.create_connection(("127.0.0.1", https), timeout=5) as raw, \
                            client.wrap_socket(raw, server_hostname=domain):
                        return True
                except (ssl.SSLError, OSError):
                    return False

            wait_until(issued, timeout=40)
            intermediate = pebble._get("/intermediates/0")
            flags = [f"--host-resolver-rules=MAP {domain} 127.0.0.1",
                     f"--ignore-certificate-errors-spki-list={_spki_hash(intermediate)}"]
            browser = Browser(CHROMIUM, tmp_path / "profile", tmp_path / "chromium.log", extra_flags=flags,
                              verify_certificates=True)
            try:
                browser.send("Network.enable")
                browser.send("Page.enable")
                browser.navigate(f"http://{domain}:{http}/admin/login/?next=/admin/")
                href = browser.evaluate("location.href")
                assert href == f"https://{domain}:{https}/admin/login/?next=/admin/", href
                redirects = [e["params"]["redirectResponse"] for e in browser.events
                             if e["method"] == "Network.requestWillBeSent" and "redirectResponse" in e["params"]]
                assert any(r["status"] == 308 and r["url"].startswith(f"http://{domain}:{http}/") for r in redirects)
                page = next(r for r in browser.responses() if r["url"] == href)
                assert page["status"] == 200 and page["protocol"] == "h2"
                details = page["securityDetails"]
                assert details["subjectName"] == domain and details["issuer"].startswith("Pebble Intermediate")
                headers = {k.lower(): v for k, v in page["headers"].items()}
                assert headers["strict-transport-security"] == "max-age=60"
                assert browser.evaluate("document.querySelector('input[name=username]') !== null")
            finally:
                browser.close()
            log = server.output()
    assert "ACME: obtained a certificate for shop.test" in log
