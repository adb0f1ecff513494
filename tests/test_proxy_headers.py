"""--forwarded-allow-ips: Forwarded / X-Forwarded-For / X-Forwarded-Proto only from trusted peers."""

from __future__ import annotations

import json

import pytest

from django_granian.config import Config
from django_granian.protocol.proxy import ProxyTrust

from .core_client import Conn, get

APP = ["--interface", "asgi", "core_apps:app"]


def trust(*cidrs: str) -> ProxyTrust:
    nets = Config(forwarded_allow_ips=list(cidrs)).forwarded_networks()
    return ProxyTrust(nets)


@pytest.mark.parametrize("headers,client,scheme", [
    ([(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")], ("1.2.3.4", 0), "https"),
    # the nearest untrusted hop wins; a client cannot spoof by prepending
    ([(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.0.0.2")], ("1.2.3.4", 0), "http"),
    ([(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"1.2.3.4")], ("1.2.3.4", 0), "http"),
    ([(b"forwarded", b'for="[2001:db8::1]:4711";proto=https, for=10.0.0.3')], ("2001:db8::1", 0), "https"),
    ([(b"forwarded", b"for=1.2.3.4;proto=javascript")], ("1.2.3.4", 0), "http"),
    ([(b"forwarded", b"for=unknown")], ("10.0.0.1", 5), "http"),
    ([(b"x-forwarded-proto", b"gopher")], ("10.0.0.1", 5), "http"),
])
def test_apply(headers: list, client: tuple, scheme: str) -> None:
    assert trust("10.0.0.0/8").apply(headers, ("10.0.0.1", 5), "http") == (client, scheme)


def test_trusts() -> None:
    t = trust("10.0.0.0/8", "::1")
    assert t.trusts("10.1.2.3") and t.trusts("::1")
    assert not t.trusts("11.0.0.1") and not t.trusts(None) and not t.trusts("not-an-ip")
    assert trust("*").trusts("8.8.8.8")


@pytest.mark.parametrize("allow,expected_client,expected_scheme", [
    ("127.0.0.1", "203.0.113.7", "https"),
    ("127.0.0.0/8", "203.0.113.7", "https"),
    ("10.0.0.0/8", "127.0.0.1", "http"),  # the peer is not trusted: headers ignored
])
def test_real_server(server_factory, allow: str, expected_client: str,  # type: ignore[no-untyped-def]
                     expected_scheme: str) -> None:
    with server_factory([*APP, "--forwarded-allow-ips", allow]) as srv:
        with Conn(srv.port) as c:
            s = json.loads(c.request(get("/scope", "X-Forwarded-For: 203.0.113.7",
                                         "X-Forwarded-Proto: https")).body)
            assert s["client"][0] == expected_client and s["scheme"] == expected_scheme


def test_default_trusts_nobody(server_factory) -> None:  # type: ignore[no-untyped-def]
    with server_factory(APP) as srv:
        with Conn(srv.port) as c:
            s = json.loads(c.request(get("/scope", "Forwarded: for=203.0.113.7;proto=https")).body)
            assert s["client"][0] == "127.0.0.1" and s["scheme"] == "http"
