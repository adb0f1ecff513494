"""RSGI test apps: one route per protocol method."""

import asyncio
import json
import os


class App:
    def __init__(self):
        self.inited = False

    def __rsgi_init__(self, loop):
        self.inited = True
        marker = os.environ.get("RSGI_MARKER")
        if marker:
            with open(marker, "a") as fh:
                fh.write("init\n")

    def __rsgi_del__(self, loop):
        marker = os.environ.get("RSGI_MARKER")
        if marker:
            with open(marker, "a") as fh:
                fh.write("del\n")

    async def __rsgi__(self, scope, protocol):
        path = scope.path
        if scope.proto == "ws":
            return await self.websocket(scope, protocol)
        if path == "/empty":
            protocol.response_empty(204, [("x-empty", "1")])
        elif path == "/str":
            protocol.response_str(200, [("content-type", "text/plain; charset=utf-8")], "héllo")
        elif path == "/bytes":
            protocol.response_bytes(201, [("content-type", "application/octet-stream")], b"\x00\x01bytes")
        elif path == "/scope":
            body = {
                "proto": scope.proto, "http_version": scope.http_version, "rsgi_version": scope.rsgi_version,
                "server": scope.server, "client": scope.client, "scheme": scope.scheme, "method": scope.method,
                "path": scope.path, "query_string": scope.query_string, "authority": scope.authority,
                "user_agent": scope.headers.get("User-Agent"), "multi": scope.headers.get_all("x-multi"),
                "has_host": "host" in scope.headers, "inited": self.inited,
            }
            protocol.response_str(200, [("content-type", "application/json")], json.dumps(body))
        elif path == "/echo":
            body = await protocol()
            protocol.response_bytes(200, [], body)
        elif path == "/echo-iter":
            sizes = []
            async for chunk in protocol:
                sizes.append(len(chunk))
            protocol.response_str(200, [], json.dumps({"total": sum(sizes), "chunks": len(sizes)}))
        elif path == "/stream":
            transport = protocol.response_stream(200, [("content-type", "text/plain")])
            for i in range(5):
                await transport.send_str(f"part{i};")
                await asyncio.sleep(0)
            await transport.send_bytes(b"end")
        elif path == "/file":
            protocol.response_file(200, [("content-type", "text/plain")], os.environ["RSGI_FILE"])
        elif path == "/file-range":
            protocol.response_file_range(206, [("content-type", "text/plain")], os.environ["RSGI_FILE"], 2, 6)
        elif path == "/error":
            raise RuntimeError("boom")
        elif path == "/nothing":
            return None
        elif path == "/twice":
            protocol.response_empty(200, [])
            protocol.response_empty(200, [])
        elif path == "/disconnect":
            print("waiting for the disconnect", flush=True)  # the test closes the connection after this line
            await protocol.client_disconnect()
            marker = os.environ.get("RSGI_MARKER")
            if marker:
                with open(marker, "a") as fh:
                    fh.write("disconnected\n")
        else:
            protocol.response_str(404, [], "not found")

    async def websocket(self, scope, protocol):
        transport = await protocol.accept()
        while True:
            message = await transport.receive()
            if message.kind == 0:
                break
            if message.kind == 1:
                await transport.send_bytes(message.data)
            else:
                await transport.send_str(message.data)
        return protocol.close(1000)


app = App()


async def plain(scope, protocol):
    """An RSGI app given as a bare coroutine function (no __rsgi__): needs --interface rsgi."""
    protocol.response_str(200, [], "plain")
