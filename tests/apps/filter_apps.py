"""Apps for the response filter tests (compression, X-Accel-Redirect / X-Sendfile): the same routes
under ASGI (``asgi``), WSGI (``wsgi``) and RSGI (``rsgi``), so one table of expectations covers all.

Routes (query string ``n`` = body size where it applies):
  /page       text/html, whole body at once, strong ETag       /json    application/json
  /small      a 10-byte text/plain body                          /png     image/png (not compressible)
  /encoded    a body the app gzipped itself                      /cookie  text/html with Set-Cookie
  /notransform Cache-Control: no-transform                       /status?code=206|304|204
  /stream     three text/plain chunks                            /events  SSE: "data: 1", then waits
  /release    lets the waiting /events stream send its second event and end
  /file       $FILTER_FILE as a file response (pathsend, wsgi.file_wrapper, response_file)
  /accel?to=V a response with X-Accel-Redirect: V, Content-Disposition and a body that must not leak
  /accel-stream?to=V the same, streamed (the app keeps sending)     /sendfile?to=V  X-Sendfile: V
  /buffering  an ordinary response with X-Accel-Buffering: no (the header must not leak)
WSGI only (request body buffering): /upload-info reads wsgi.input and describes it; /fast answers at once;
  /big is 32 MiB sent at once (a slow reader must not hold the thread)
"""

from __future__ import annotations

import asyncio
import gzip
import os
import threading
from urllib.parse import parse_qs

SENTENCE = b"<p>The quick brown fox jumps over the lazy dog, again and again. </p>\n"
RELEASE_ASYNC: asyncio.Event | None = None
RELEASE_SYNC = threading.Event()


def page(n: int) -> bytes:
    return (SENTENCE * (n // len(SENTENCE) + 1))[:n]


def route(path: str, query: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """(status, headers, body) of the routes answered with one body; None for the streaming ones."""
    q = {k: v[0] for k, v in parse_qs(query).items()}
    n = int(q.get("n", "20000"))
    if path == "/page":
        return 200, [("content-type", "text/html; charset=utf-8"), ("etag", '"v1"')], page(n)
    if path == "/json":
        return 200, [("content-type", "application/json")], b'{"items": [' + b'{"a": 1, "b": "two"}, ' * (n // 22) + b"0]}"
    if path == "/small":
        return 200, [("content-type", "text/plain")], b"0123456789"
    if path == "/png":
        return 200, [("content-type", "image/png")], page(n)
    if path == "/encoded":
        return 200, [("content-type", "text/html"), ("content-encoding", "gzip")], gzip.compress(page(n))
    if path == "/cookie":
        return 200, [("content-type", "text/html"), ("set-cookie", "sessionid=secret; HttpOnly")], page(n)
    if path == "/notransform":
        return 200, [("content-type", "text/html"), ("cache-control", "no-transform")], page(n)
    if path == "/status":
        code = int(q["code"])
        headers = [("content-type", "text/html")]
        if code == 206:
            headers.append(("content-range", f"bytes 0-{n - 1}/{n * 2}"))
        return code, headers, page(n) if code == 206 else b""
    if path == "/accel":
        return 200, [("content-type", "application/pdf"), ("content-disposition", 'attachment; filename="r.pdf"'),
                     ("x-accel-redirect", q.get("to", "")), ("x-accel-expires", "60"), ("x-app", "kept"),
                     ("etag", '"app-etag"'), ("content-length", "27")], b"the app's body must not leak"[:27]
    if path == "/sendfile":
        return 200, [("content-type", "text/plain"), ("x-sendfile", q.get("to", ""))], b"not this"
    if path == "/buffering":
        return 200, [("content-type", "text/plain"), ("x-accel-buffering", "no")], b"plain"
    if path == "/release":
        RELEASE_SYNC.set()
        if RELEASE_ASYNC is not None:
            RELEASE_ASYNC.set()
        return 200, [("content-type", "text/plain")], b"released"
    return None


def encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode("latin-1")) for k, v in headers]


STREAM = [b"chunk one, " * 50, b"chunk two, " * 50, b"chunk three " * 50]
EVENTS_HEAD = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]


# -- ASGI -----------------------------------------------------------------------------------------------
async def asgi(scope, receive, send):  # type: ignore[no-untyped-def]
    global RELEASE_ASYNC
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    path, query = scope["path"], scope["query_string"].decode()
    if RELEASE_ASYNC is None:
        RELEASE_ASYNC = asyncio.Event()
    found = route(path, query)
    if found is not None:
        status, headers, body = found
        await send({"type": "http.response.start", "status": status, "headers": encode(headers)})
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for chunk in STREAM:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/events":
        RELEASE_ASYNC.clear()
        await send({"type": "http.response.start", "status": 200, "headers": encode(EVENTS_HEAD)})
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await RELEASE_ASYNC.wait()
        await send({"type": "http.response.body", "body": b"data: 2\n\n"})
    elif path == "/file":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.pathsend", "path": os.environ["FILTER_FILE"]})
    elif path == "/accel-stream":
        to = parse_qs(query)["to"][0].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"x-accel-redirect", to)]})
        try:
            for _ in range(1000):
                await send({"type": "http.response.body", "body": b"leak " * 100, "more_body": True})
                await asyncio.sleep(0)
        except OSError:
            return  # told the body is not wanted
        raise RuntimeError("the stream was never stopped")
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"no route"})


# -- WSGI -----------------------------------------------------------------------------------------------
UPLOAD_CALLS: dict[str, int] = {}  # query string of /upload-info -> how many times the app ran for it


def upload_info(environ) -> bytes:  # type: ignore[no-untyped-def]
    import hashlib
    import json

    inp = environ["wsgi.input"]
    data = inp.read()
    info = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "input": type(inp).__name__,
            "content_length": environ.get("CONTENT_LENGTH"), "spooled": False, "file": None}
    try:
        fd = inp.fileno()
    except (AttributeError, OSError, ValueError):
        pass
    else:
        info["spooled"] = True
        info["file"] = os.readlink(f"/proc/self/fd/{fd}")
    return json.dumps(info).encode()


BIG = b"b" * (32 * 1024 * 1024)


def wsgi(environ, start_response):  # type: ignore[no-untyped-def]
    path, query = environ["PATH_INFO"], environ.get("QUERY_STRING", "")
    if path == "/upload-info":
        UPLOAD_CALLS[query] = UPLOAD_CALLS.get(query, 0) + 1
        start_response("200 OK", [("content-type", "application/json")])
        return [upload_info(environ)]
    if path == "/fast":
        start_response("200 OK", [("content-type", "text/plain")])
        return [b"fast"]
    if path == "/upload-calls":
        start_response("200 OK", [("content-type", "text/plain")])
        return [str(UPLOAD_CALLS.get(query, 0)).encode()]
    if path == "/big":
        start_response("200 OK", [("content-type", "application/octet-stream"), ("content-length", str(len(BIG)))])
        return [BIG]
    found = route(path, query)
    if found is not None:
        status, headers, body = found
        start_response(f"{status} X", headers)
        return [body]
    if path == "/stream":
        start_response("200 OK", [("content-type", "text/plain")])
        return iter(STREAM)
    if path == "/events":
        RELEASE_SYNC.clear()
        start_response("200 OK", EVENTS_HEAD)

        def events():  # type: ignore[no-untyped-def]
            yield b"data: 1\n\n"
            RELEASE_SYNC.wait(30)
            yield b"data: 2\n\n"
        return events()
    if path == "/file":
        start_response("200 OK", [("content-type", "text/plain")])
        return environ["wsgi.file_wrapper"](open(os.environ["FILTER_FILE"], "rb"))
    if path == "/accel-stream":
        start_response("200 OK", [("content-type", "text/plain"), ("x-accel-redirect", parse_qs(query)["to"][0])])
        return (b"leak " * 100 for _ in range(1000))
    start_response("404 Not Found", [("content-type", "text/plain")])
    return [b"no route"]


# -- RSGI -----------------------------------------------------------------------------------------------
class RSGIApp:
    async def __rsgi__(self, scope, protocol):  # type: ignore[no-untyped-def]
        global RELEASE_ASYNC
        if RELEASE_ASYNC is None:
            RELEASE_ASYNC = asyncio.Event()
        path, query = scope.path, scope.query_string
        found = route(path, query)
        if found is not None:
            status, headers, body = found
            protocol.response_bytes(status, headers, body)
        elif path == "/stream":
            transport = protocol.response_stream(200, [("content-type", "text/plain")])
            for chunk in STREAM:
                await transport.send_bytes(chunk)
        elif path == "/events":
            RELEASE_ASYNC.clear()
            transport = protocol.response_stream(200, EVENTS_HEAD)
            await transport.send_bytes(b"data: 1\n\n")
            await RELEASE_ASYNC.wait()
            await transport.send_bytes(b"data: 2\n\n")
        elif path == "/file":
            protocol.response_file(200, [("content-type", "text/plain")], os.environ["FILTER_FILE"])
        elif path == "/accel-stream":
            transport = protocol.response_stream(200, [("content-type", "text/plain"),
                                                       ("x-accel-redirect", parse_qs(query)["to"][0])])
            try:
                for _ in range(1000):
                    await transport.send_bytes(b"leak " * 100)
            except Exception:  # noqa: BLE001 - RSGIProtocolClosed: told the body is not wanted
                return
        else:
            protocol.response_bytes(404, [("content-type", "text/plain")], b"no route")


rsgi = RSGIApp()
