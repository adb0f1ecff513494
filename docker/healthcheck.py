"""Container health check: GET a path on the local server; exit 0 when it answers 2xx/3xx.

Used by the Dockerfile HEALTHCHECK and docker/compose.yaml (no curl needed in the image).
Environment: HEALTHCHECK_PATH (default /api/health), HEALTHCHECK_HOST (Host header, default
localhost: it must be in ALLOWED_HOSTS), GRANIAN_PORT (default 8000), and HTTPS is used when
GRANIAN_SSL_CERTIFICATE or GRANIAN_ACME_DOMAIN is set (the certificate is not verified: this is the
server itself).
"""

import http.client
import os
import ssl
import sys


def main() -> int:
    port = int(os.environ.get("GRANIAN_PORT") or 8000)
    path = os.environ.get("HEALTHCHECK_PATH") or "/api/health"
    host = os.environ.get("HEALTHCHECK_HOST") or "localhost"
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT") or 4)
    if os.environ.get("GRANIAN_SSL_CERTIFICATE") or os.environ.get("GRANIAN_ACME_DOMAIN"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                                                       context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, "User-Agent": "healthcheck"})
        status = conn.getresponse().status
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if status >= 400:
        print(f"unhealthy: GET {path} -> {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
