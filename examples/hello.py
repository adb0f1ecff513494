"""Hello-world apps used by the README, tests and benchmarks: the same 13-byte text/plain response
under ASGI, WSGI and RSGI."""

BODY = b"Hello, world!"
_ASGI_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


async def lifespan(receive, send):
    """Acknowledge lifespan startup and shutdown (nothing to set up)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": _ASGI_HEADERS})
    await send({"type": "http.response.body", "body": BODY})


_WSGI_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "13")]


def wsgi(environ, start_response):
    start_response("200 OK", _WSGI_HEADERS)
    return [BODY]


_RSGI_HEADERS = [("content-type", "text/plain")]


class RSGIApp:
    async def __rsgi__(self, scope, protocol):
        protocol.response_bytes(200, _RSGI_HEADERS, BODY)


rsgi = RSGIApp()
