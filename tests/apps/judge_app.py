"""The app the third-party judges run against (scripts/judges.py, tests/test_judges.py, test_h2_conformance):
HTTP requests have their whole body read, then get a 200 with a small text body; WebSockets echo every
message (the Autobahn|Testsuite fuzzing client expects an echo server)."""

from examples.hello import lifespan

BODY = b"Hello, world! This is django-granian answering a conformance judge.\n"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(BODY))]


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        while True:
            message = await receive()
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": BODY})
    elif kind == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            text = message.get("text")
            if text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
    elif kind == "lifespan":
        await lifespan(receive, send)
