"""Apps for the HTTP/2 and TLS tests (tests/test_http2.py, tests/test_tls.py)."""

import asyncio
import json
import os

from bench.apps.ws_echo import app as websocket_echo
from examples.hello import lifespan


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await websocket_echo(scope, receive, send)
        return
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):  # mounted under --url-path-prefix
        path = path[len(root):]
    handler = ROUTES.get(path, hello)
    await handler(scope, receive, send)


async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def read_then_hello(scope, receive, send):
    """Answers after the whole request, like a static file server (what h2spec expects of "/")."""
    if await read_body(receive) is not None:
        await hello(scope, receive, send)


async def read_body(receive):
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return bytes(body)


async def echo(scope, receive, send):
    body = await read_body(receive)
    if body is None:
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"), (b"X-Echo-Length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


async def slow_reader(scope, receive, send):
    """Reads the body slowly: request flow control must hold the client back."""
    total = 0
    while True:
        message = await receive()
        total += len(message.get("body", b""))
        await asyncio.sleep(0.01)
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(total).encode()})


async def big(scope, receive, send):
    """``?n=<bytes>`` streamed in 64 KiB chunks (response flow control)."""
    n = int(dict(p.split("=") for p in scope["query_string"].decode().split("&") if p).get("n", 1 << 20))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % n)]})
    chunk = b"x" * 65536
    while n > 0:
        piece = chunk[:n]
        n -= len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": n > 0})


async def scope_info(scope, receive, send):
    ext = scope.get("extensions") or {}
    info = {
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "method": scope["method"],
        "path": scope["path"],
        "query_string": scope["query_string"].decode(),
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "extensions": sorted(ext),
        "tls": ext.get("tls"),
        "server": list(scope["server"] or []),
        "client": list(scope["client"] or []),
        "root_path": scope.get("root_path", ""),
    }
    body = json.dumps(info).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def trailers(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")],
                "trailers": True})
    await send({"type": "http.response.body", "body": b"body", "more_body": True})
    await send({"type": "http.response.body", "body": b"-more"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]})


async def early_hint(scope, receive, send):
    await send({"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload; as=style"]})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hinted"})


async def pathsend(scope, receive, send):
    path = os.environ["H2_TEST_FILE"]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
    await send({"type": "http.response.pathsend", "path": path})


async def slow(scope, receive, send):
    print("slow started", flush=True)  # the tests wait for this line (the request is in the app)
    await asyncio.sleep(float(scope["query_string"].decode() or "1"))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"slow done"})


async def bad_header(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-bad", b"a\r\nb")]})
    await send({"type": "http.response.body", "body": b"never"})


# --backpressure and --request-body-timeout (tests/test_h2_limits.py): what the app saw, per worker
SEEN = {"active": 0, "max": 0, "started": [], "body": []}


async def counted(scope, receive, send):
    """Records its start order (``?tag``) and the most requests in the app at once; sleeps 0.4 s
    (``?tag&1.5``: 1.5 s), then echoes the request body."""
    tag, _, delay = scope["query_string"].decode().partition("&")
    print(f"counted {tag} started", flush=True)  # the tests wait for this line (the request is in the app)
    SEEN["active"] += 1
    SEEN["max"] = max(SEEN["max"], SEEN["active"])
    SEEN["started"].append(tag)
    try:
        await asyncio.sleep(float(delay or "0.4"))
        body = await read_body(receive)
        if body is None:
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": tag.encode() + b":" + body})
    finally:
        SEEN["active"] -= 1


async def seen(scope, receive, send):
    body = json.dumps({k: SEEN[k] for k in ("active", "max", "started", "body")}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def watch_body(scope, receive, send):
    """Reads the body, recording ``disconnect`` or its length; ``?started``: starts the response first."""
    started = scope["query_string"] == b"started"
    if started:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"early", "more_body": True})
    body = await read_body(receive)
    SEEN["body"].append("disconnect" if body is None else len(body))
    if body is not None:
        if not started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})


async def sleep_then_read(scope, receive, send):
    """Reads one body message, sleeps ``?<seconds>`` (an app that stops reading for a while: flow control
    holds the client back), then reads the rest; answers the body's length."""
    first = await receive()
    await asyncio.sleep(float(scope["query_string"].decode() or "1"))
    rest = await read_body(receive) if first.get("more_body") else b""
    if rest is not None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % (len(first.get("body", b"")) + len(rest))})


ROUTES = {
    "/counted": counted,
    "/__seen": seen,
    "/watch-body": watch_body,
    "/sleep-then-read": sleep_then_read,
    "/echo": echo,
    "/slow-reader": slow_reader,
    "/big": big,
    "/scope": scope_info,
    "/trailers": trailers,
    "/early": early_hint,
    "/pathsend": pathsend,
    "/slow": slow,
    "/bad-header": bad_header,
    "/read-then-hello": read_then_hello,
}


def wsgi(environ, start_response):
    body = environ["wsgi.input"].read()
    out = b"wsgi:" + environ["SERVER_PROTOCOL"].encode() + b":" + environ["wsgi.url_scheme"].encode() + b":" + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]
