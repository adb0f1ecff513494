"""Apps for the static file and pathsend tests (tests/test_static.py, tests/test_pathsend.py)."""

import os


async def echo(scope, receive, send):
    """Answers "app:<method> <path>" so a test can tell the app from the static engine."""
    if scope["type"] != "http":
        return
    body = f"app:{scope['method']} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def pathsend(scope, receive, send):
    """/file/<name> answers with ``http.response.pathsend`` of $PATHSEND_DIR/<name>; /ext lists the
    scope's extensions; anything else echoes."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/ext":
        body = ",".join(sorted(scope.get("extensions") or {})).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})
        return
    if path.startswith("/file/"):
        target = os.path.join(os.environ["PATHSEND_DIR"], path[len("/file/"):])
        headers = [(b"content-type", b"application/octet-stream"), (b"x-app", b"pathsend")]
        if scope["query_string"] == b"bad-length":
            headers.append((b"content-length", b"1"))  # replaced by the real size
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": target})
        return
    await echo(scope, receive, send)
