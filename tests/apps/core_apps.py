"""Test apps for the server-core tests (ASGI ``app``, WSGI ``wsgi``, lifespan variants).

Every request that reaches an app is counted; ``GET /__count`` (not counted) returns the count, so
tests can prove a malformed request never reached the application. Side effects that happen after
the response (disconnects, close() calls, lifespan shutdown) are recorded as files in
``$CORE_MARK_DIR``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

COUNT = {"n": 0, "active": 0, "max_active": 0}
LOCK = threading.Lock()


def mark(name: str, text: str = "") -> None:
    directory = os.environ.get("CORE_MARK_DIR")
    if directory:
        with open(os.path.join(directory, name), "w") as fh:
            fh.write(text)


def _jsonable(value):  # type: ignore[no-untyped-def]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# -- ASGI -----------------------------------------------------------------------------------------------
async def _respond(send, status: int = 200, body: bytes = b"", headers=()) -> None:  # type: ignore[no-untyped-def]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive) -> tuple[bytes, int]:  # type: ignore[no-untyped-def]
    parts, messages = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise OSError("disconnected")
        messages += 1
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts), messages


async def lifespan(scope, receive, send, fail: str | None = None) -> None:  # type: ignore[no-untyped-def]
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if fail:
                await send({"type": "lifespan.startup.failed", "message": fail})
                return
            scope["state"]["token"] = "s3cret"
            mark("startup")
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            mark("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    root = scope["root_path"]
    path = scope["path"][len(root):] if scope["path"].startswith(root) else scope["path"]
    if path == "/__count":
        await _respond(send, body=str(COUNT["n"]).encode())
        return
    if path == "/__max":
        await _respond(send, body=str(COUNT["max_active"]).encode())
        return
    COUNT["n"] += 1
    COUNT["active"] += 1
    COUNT["max_active"] = max(COUNT["max_active"], COUNT["active"])
    try:
        await _route(path, scope, receive, send)
    finally:
        COUNT["active"] -= 1


_BACKGROUND: set = set()


async def _background() -> None:
    try:
        await asyncio.sleep(3600)
    finally:  # the server cancels leftover tasks at shutdown: this runs, nothing is dropped silently
        mark("background-finally")


async def _route(path: str, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    query = scope["query_string"].decode()
    if path.startswith("/scope"):
        info = {k: _jsonable(v) for k, v in scope.items() if k not in ("extensions", "state")}
        info["state"] = _jsonable(dict(scope.get("state", {})))
        scope.get("state", {})["leak"] = 1  # must not leak into the next request
        scope["headers"].append((b"x-leak", b"1"))  # like starlette's MutableHeaders: must not leak either
        info["extensions"] = sorted(scope.get("extensions", {}))
        await _respond(send, body=json.dumps(info).encode(), headers=[(b"content-type", b"application/json")])
    elif path == "/echo":
        body, messages = await _read_body(receive)
        await _respond(send, body=body, headers=[(b"x-messages", str(messages).encode())])
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream-body":  # the head and a first chunk at once, the end after the whole request body
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"started,", "more_body": True})
        body, _ = await _read_body(receive)
        await send({"type": "http.response.body", "body": body})
    elif path == "/noread":
        await _respond(send, body=b"answered without reading")
    elif path == "/hello":
        await _respond(send, body=b"hello", headers=[(b"content-length", b"5")])
    elif path == "/error-before":
        raise RuntimeError("boom before the response")
    elif path == "/error-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after the response started")
    elif path == "/no-response":
        return
    elif path == "/bad-message":
        await send({"type": "http.response.body", "body": b"too early"})
    elif path == "/bad-type":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": "not bytes"})
    elif path == "/bad-header":
        await _respond(send, body=b"x", headers=[(b"x-ok", b"a\r\nx-injected: 1")])
    elif path == "/bad-header-name":
        await _respond(send, body=b"x", headers=[(b"x-ok\r\nx-injected", b"1")])
    elif path == "/wait-disconnect":
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                mark("disconnected", scope["path"])
                return
    elif path == "/sleep":
        mark("sleeping", query)
        await asyncio.sleep(float(query or "0.5"))
        await _respond(send, body=b"slept")
    elif path == "/background":  # a task that outlives its request (a cache flusher, a watcher, ...)
        _BACKGROUND.add(asyncio.get_running_loop().create_task(_background()))
        await _respond(send, body=b"started")
    elif path == "/custom-headers":
        await _respond(send, body=b"x", headers=[(b"server", b"mine"), (b"date", b"yesterday")])
    elif path == "/status":
        await _respond(send, status=int(query), body=b"")
    elif path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})
    else:
        await _respond(send, body=b"ok " + path.encode())


async def lifespan_failing(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send, fail="database unreachable: core-test")
        return
    await app(scope, receive, send)


async def lifespan_raising(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    await app(scope, receive, send)


async def lifespan_returning(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        return
    await app(scope, receive, send)


async def lifespan_asserting(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """An app that refuses the lifespan scope entirely (asginl must never send it)."""
    if scope["type"] == "lifespan":
        mark("lifespan-called")
        raise AssertionError("lifespan must not be called")
    await app(scope, receive, send)


# -- WSGI ------------------------------------------------------------------------------------------------
class Closing:
    """A streamed iterable that records close()."""

    def __init__(self, name: str, parts: list[bytes], fail_after: int = -1) -> None:
        self.name = name
        self.parts = parts
        self.fail_after = fail_after

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i, part in enumerate(self.parts):
            if i == self.fail_after:
                raise RuntimeError("boom in the middle of the body")
            yield part

    def close(self) -> None:
        mark("closed-" + self.name)


def wsgi(environ, start_response):  # type: ignore[no-untyped-def]
    path = environ["PATH_INFO"]
    if path == "/__count":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(COUNT["n"]).encode()]
    if path == "/__max":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(COUNT["max_active"]).encode()]
    with LOCK:
        COUNT["n"] += 1
        COUNT["active"] += 1
        COUNT["max_active"] = max(COUNT["max_active"], COUNT["active"])
    try:
        return _wsgi_route(path, environ, start_response)
    finally:
        with LOCK:
            COUNT["active"] -= 1


def _wsgi_route(path, environ, start_response):  # type: ignore[no-untyped-def]
    inp = environ["wsgi.input"]
    if path.startswith("/environ"):
        info = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
        info["wsgi.input"] = type(inp).__name__
        info["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(info).encode()]
    if path == "/echo":
        body = inp.read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/read-n":
        n = int(environ["QUERY_STRING"] or "7")
        parts = []
        while True:
            part = inp.read(n)
            if not part:
                break
            assert len(part) <= n
            parts.append(part)
        start_response("200 OK", [("X-Reads", str(len(parts)))])
        return [b"".join(parts)]
    if path == "/readline":
        lines = []
        while True:
            line = inp.readline()
            if not line:
                break
            lines.append(line)
        start_response("200 OK", [("X-Lines", str(len(lines)))])
        return [b"|".join(lines)]
    if path == "/readline-limited":
        first = inp.readline(3)
        rest = inp.read()
        start_response("200 OK", [])
        return [first + b"|" + rest]
    if path == "/iter":
        lines = list(inp)
        start_response("200 OK", [("X-Lines", str(len(lines)))])
        return lines
    if path == "/file":
        fh = open(os.path.join(os.path.dirname(__file__), "core_apps.py"), "rb")  # noqa: SIM115
        start_response("200 OK", [("Content-Type", "text/x-python")])
        return environ["wsgi.file_wrapper"](fh, 1024)
    if path == "/bigfile":  # a file named by the query, with its Content-Length (like Django's FileResponse)
        fh = open(environ["QUERY_STRING"], "rb")  # noqa: SIM115
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(os.fstat(fh.fileno()).st_size))])
        return environ["wsgi.file_wrapper"](fh, 65536)
    if path == "/notmodified-file":  # a 304 must not carry the file, however the app hands it over
        fh = open(environ["QUERY_STRING"], "rb")  # noqa: SIM115
        start_response("304 Not Modified", [("ETag", '"x"')])
        return environ["wsgi.file_wrapper"](fh, 65536)
    if path == "/tempfile":  # deleted when the app's close() closes it, before the body is sent
        import tempfile

        tmp = tempfile.NamedTemporaryFile(prefix="core-apps-")  # noqa: SIM115
        tmp.write(b"0123456789abcdef" * 65536)  # 1 MiB
        tmp.seek(16)  # the body starts where the file position is
        mark("tempfile", tmp.name)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](tmp, 65536)
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(environ["QUERY_STRING"] or "stream", [b"a" * 10, b"b" * 10, b"c" * 10])
    if path == "/big-stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("big", [b"x" * 65536 for _ in range(64)])
    if path == "/error-before":
        raise RuntimeError("wsgi boom before")
    if path == "/error-after":
        start_response("200 OK", [])
        return Closing("error-after", [b"first", b"second"], fail_after=1)
    if path == "/exc-info":
        start_response("200 OK", [("X-Partial", "1")])
        try:
            raise ValueError("changed my mind")
        except ValueError:
            import sys

            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"unavailable"]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written,")
        return [b"returned"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "0.5"))
        start_response("200 OK", [])
        return [threading.current_thread().name.encode()]
    if path == "/bad-header":
        start_response("200 OK", [("X-Ok", "a\r\nX-Injected: 1")])
        return [b"x"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok " + path.encode("latin-1")]
