"""ASGI app for the supervisor tests: reports its pid, sleeps, allocates, records lifespan events.

Environment: WORKERS_MARKER_DIR (lifespan shutdown writes ``shutdown-<pid>`` there, ``/slow``
writes ``slow-<pid>`` when it starts sleeping), WORKERS_FAIL_STARTUP=1 (lifespan startup fails).

``/wait?NAME`` writes ``wait-NAME`` there and answers once a file ``release`` exists in that directory;
``/echo?NAME`` writes ``echo-NAME`` once its head reached the app, reads the whole request body and
answers ``<length> <sha256>`` (the SIGTERM tests hold requests in flight with them, without sleeping).
"""

import asyncio
import hashlib
import os

HOARD = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("WORKERS_FAIL_STARTUP") == "1":
                    await send({"type": "lifespan.startup.failed", "message": "database is unreachable"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                marker_dir = os.environ.get("WORKERS_MARKER_DIR")
                if marker_dir:
                    with open(os.path.join(marker_dir, f"shutdown-{os.getpid()}"), "w") as fh:
                        fh.write("done")
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    query = scope["query_string"].decode()
    status = 200
    if path == "/slow":
        marker_dir = os.environ.get("WORKERS_MARKER_DIR")
        if marker_dir:  # the request reached the app: tests wait for this instead of sleeping
            with open(os.path.join(marker_dir, f"slow-{os.getpid()}"), "w") as fh:
                fh.write("sleeping")
        await asyncio.sleep(float(query.partition("=")[2] or 1))
        body = b"slow done"
    elif path in ("/wait", "/echo"):
        marker_dir = os.environ["WORKERS_MARKER_DIR"]
        with open(os.path.join(marker_dir, f"{path[1:]}-{query}"), "w") as fh:
            fh.write(str(os.getpid()))
        if path == "/wait":
            release = os.path.join(marker_dir, "release")
            while not os.path.exists(release):
                await asyncio.sleep(0.01)
            body = f"released {query}".encode()
        else:
            data = bytearray()
            more = True
            while more:
                message = await receive()
                data += message.get("body", b"")
                more = message.get("more_body", False) and message["type"] == "http.request"
            body = f"{len(data)} {hashlib.sha256(data).hexdigest()}".encode()
    elif path == "/alloc":
        mib = int(query.partition("=")[2] or 100)
        HOARD.append(b"\x01" * (mib * 1024 * 1024))
        body = str(os.getpid()).encode()
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        body = b"status"
    else:
        body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
