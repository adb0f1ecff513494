"""ASGI WebSocket test apps (tests/test_websocket.py)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import unquote

from examples.hello import lifespan


async def echo(scope, receive, send):
    """Echo text/bytes; the path selects behaviours:

    /           accept (first offered subprotocol), echo until disconnect
    /headers    accept with extra headers
    /scope      accept, send the scope (JSON) as text
    /close      accept, close with the code/reason from the query string "code,reason"
    /deny       refuse with a websocket.http.response (status 401, JSON body in two parts)
    /reject     websocket.close before accept (403)
    /error      raise before accept (500)
    /error-after  accept, raise (1011)
    /record     accept, echo; report the disconnect (code, reason) to /last-disconnect
    /slow       accept, never receive (flow control)
    """
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    if scope["type"] == "http":
        await receive()
        body = json.dumps(DISCONNECTS).encode() if scope["path"] == "/last-disconnect" else b"plain http"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
        return
    assert scope["type"] == "websocket"
    path = scope["path"]
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    if path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"x-denied", b"yes")]})
        await send({"type": "websocket.http.response.body", "body": b'{"error":', "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b'"nope"}'})
        return
    if path == "/reject":
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/error":
        raise RuntimeError("boom before accept")
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    headers = [(b"x-ws-hello", b"world"), (b"set-cookie", b"a=b")] if path == "/headers" else []
    await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": headers})
    if path == "/scope":
        s = {k: v for k, v in scope.items() if k not in ("headers", "state", "raw_path", "query_string")}
        s["raw_path"] = scope["raw_path"].decode()
        s["query_string"] = scope["query_string"].decode()
        await send({"type": "websocket.send", "text": json.dumps(s, default=repr)})
    if path == "/close":
        code, _, reason = unquote(scope["query_string"].decode()).partition(",")
        await send({"type": "websocket.close", "code": int(code), "reason": reason})
        return
    if path == "/error-after":
        raise RuntimeError("boom after accept")
    if path == "/slow":
        await asyncio.sleep(3600)
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            if path == "/record":
                DISCONNECTS.append([msg["code"], msg.get("reason", "")])
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})


DISCONNECTS: list = []
