"""ASGI entry point (``ASGI_APPLICATION``): Django for HTTP, a plain-ASGI WebSocket echo at /ws/echo.

No framework needed: WebSocket scopes are routed here, everything else goes to Django. Under
``manage.py granian`` ordinary HTTP requests take the WSGI fast path; WebSocket and lifespan
scopes (and HTTP with ``--interface asgi``) come here.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

django_application = get_asgi_application()

STARTED = {"lifespan": False}


async def websocket_echo(scope, receive, send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            STARTED["lifespan"] = True
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope, receive, send) -> None:
    kind = scope["type"]
    if kind == "http":
        await django_application(scope, receive, send)
    elif kind == "websocket":
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):]
        if path == "/ws/echo":
            await websocket_echo(scope, receive, send)
        else:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4404})
    elif kind == "lifespan":
        await lifespan(scope, receive, send)
