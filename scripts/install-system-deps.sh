#!/usr/bin/env bash
# System tools the tests use (real clients): curl, h2load (nghttp2-client), wrk, chromium, pebble
# (Let's Encrypt's test ACME server, for the automatic HTTPS tests) and gtlsclient (ngtcp2-client: ngtcp2's
# HTTP/3 client, a second HTTP/3 implementation next to aioquic's; Debian's curl has no HTTP/3).
# Installs only what is missing; never fails the run just because apt is unavailable.
set -u
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v pebble >/dev/null 2>&1 || need+=(pebble)
command -v gtlsclient >/dev/null 2>&1 || need+=(ngtcp2-client)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing system packages: ${need[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
      || echo "warning: could not install ${need[*]}; tests needing them will be skipped"
  else
    echo "warning: missing ${need[*]} and no root apt-get; tests needing them will be skipped"
  fi
fi
