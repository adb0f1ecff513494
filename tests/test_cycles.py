"""The app/ request cycles in-process, against a fake channel: what reaches the transport for what the
app does (no server process, no socket), so a cycle bug shows up here in milliseconds.

The end-to-end tests (test_asgi.py, test_rsgi.py, test_wsgi.py, ...) prove the same paths over real
connections; these pin the cycle's side of the channel contract (app/http.py ``Channel``).
"""

from __future__ import annotations

import asyncio
import io
import os
from typing import Any, Callable

import pytest

from django_granian.app.cycle import INTERNAL_ERROR_BODY, INTERNAL_ERROR_HEADERS
from django_granian.app.http import ASGIHTTPCycle, ClientDisconnected
from django_granian.app.rsgi import RSGIHTTPCycle, RSGIProtocolClosed, Scope
from django_granian.app.threadpool import ThreadPool
from django_granian.app.wsgi import WSGICycle
from django_granian.app.wsgi_io import FileWrapper, WSGIInput
from django_granian.protocol.fields import ResponseHeaderError
from django_granian.protocol.http11 import RequestHead

SCOPE = {"type": "http", "method": "GET", "path": "/x"}
OK = [(b"content-type", b"text/plain")]
FAILED_500 = ("head", 500, INTERNAL_ERROR_HEADERS, INTERNAL_ERROR_BODY, True)


class FakeChannel:
    """Records every call a cycle makes, in order; ``complete`` is set by response_complete/abort."""

    def __init__(self, loop: asyncio.AbstractEventLoop, refuse_headers: bool = False) -> None:
        self.calls: list[tuple] = []
        self.writing_paused = False
        self.complete = loop.create_future()
        self.refuse_headers = refuse_headers
        self.client, self.server_addr, self.scheme, self.peer_trusted, self.extensions = None, None, "http", False, None

    def _done(self, what: str) -> None:
        if not self.complete.done():
            self.complete.set_result(what)

    def send_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        if self.refuse_headers and status != 500:
            raise ResponseHeaderError("invalid header name b'bad name'")
        self.calls.append(("head", status, tuple(headers), body, end))

    def send_body(self, body: bytes, end: bool) -> None:
        self.calls.append(("body", body, end))

    def send_trailers(self, headers: Any) -> None:
        self.calls.append(("trailers", tuple(headers)))

    def send_informational(self, status: int, headers: Any) -> None:
        self.calls.append(("informational", status, tuple(headers)))

    async def send_file_response(self, status: int, headers: Any, path: str, start: int = 0,
                                 end: int | None = None) -> None:
        self.calls.append(("file", status, tuple(headers), path, start, end))

    async def send_fd_response(self, status: int, headers: Any, fd: int, offset: int, count: int) -> None:
        os.close(fd)
        self.calls.append(("fd", status, tuple(headers), offset, count))

    async def drain(self) -> None:
        self.calls.append(("drain",))

    def want_body(self, cycle: Any) -> None:
        self.calls.append(("want_body",))

    def body_pressure(self, high: bool) -> None:
        self.calls.append(("pressure", high))

    def response_complete(self, cycle: Any) -> None:
        self.calls.append(("complete",))
        self._done("complete")

    def abort(self, reason: str) -> None:
        self.calls.append(("abort", reason))
        self._done("abort")

    def respond(self, status: int, headers: Any, body: bytes) -> None:  # pragma: no cover - not used by cycles
        raise AssertionError("cycles never answer for the server")

    def respond_fd(self, status: int, headers: Any, fd: int, offset: int, count: int) -> None:  # pragma: no cover
        raise AssertionError("cycles never answer for the server")


def run(make: Callable[[FakeChannel, asyncio.AbstractEventLoop], Any], then: Callable[[Any], Any] | None = None,
        refuse_headers: bool = False) -> list[tuple]:
    """Start the cycle ``make(channel, loop)`` builds, call ``then(cycle)`` (the transport's part), and
    return the channel calls once the response is complete or aborted (and the app has returned)."""

    async def main() -> list[tuple]:
        loop = asyncio.get_running_loop()
        channel = FakeChannel(loop, refuse_headers)
        cycle = make(channel, loop)
        cycle.run()
        if then is not None:
            result = then(cycle)
            if asyncio.iscoroutine(result):
                await result
        await asyncio.wait_for(channel.complete, 5)
        task = getattr(cycle, "task", None)
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), 5)
        return channel.calls

    return asyncio.run(main())


def asgi(app: Any, has_body: bool = False) -> Callable[[FakeChannel, asyncio.AbstractEventLoop], ASGIHTTPCycle]:
    return lambda channel, loop: ASGIHTTPCycle(app, dict(SCOPE), channel, loop, has_body)


# -- ASGI --------------------------------------------------------------------------------------------
def test_asgi_start_and_body_become_one_head_with_the_body() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        assert await receive() == {"type": "http.request", "body": b"", "more_body": False}
        await send({"type": "http.response.start", "status": 200, "headers": OK})
        await send({"type": "http.response.body", "body": b"hi"})

    assert run(asgi(app)) == [("head", 200, tuple(OK), b"hi", True), ("complete",)]


def test_asgi_streamed_body_trailers_and_early_hints() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]})
        await send({"type": "http.response.start", "status": 200, "headers": OK, "trailers": True})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})

    assert run(asgi(app)) == [
        ("informational", 103, ((b"link", b"</a.css>; rel=preload"),)),
        ("head", 200, tuple(OK), b"a", False), ("body", b"b", False), ("trailers", ((b"x-sum", b"1"),)),
        ("complete",)]


def test_asgi_request_body_pieces_and_backpressure() -> None:
    received: list[dict] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(message)
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    def transport(cycle: ASGIHTTPCycle) -> None:
        cycle.feed_body(b"x" * 300_000)  # over the high-water mark: the channel is asked to pause
        cycle.feed_body(b"y")
        cycle.end_body()

    calls = run(asgi(app, has_body=True), transport)
    assert [m["body"] for m in received] == [b"x" * 300_000 + b"y"]
    # the app ran eagerly up to its first receive(), before any body came: it asked for it; every piece
    # fed above the high-water mark asks the channel to pause, the app taking them all resumes it
    assert calls == [("want_body",), ("pressure", True), ("pressure", True), ("pressure", False),
                     ("head", 204, (), b"", True), ("complete",)]


def test_asgi_receive_waits_for_the_body_and_asks_for_it() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        message = await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": message["body"]})

    async def later(cycle: ASGIHTTPCycle) -> None:
        await asyncio.sleep(0)  # the app is waiting in receive() now
        cycle.feed_body(b"late")
        cycle.end_body()

    calls = run(asgi(app, has_body=True), later)
    assert calls == [("want_body",), ("head", 200, (), b"late", True), ("complete",)]


@pytest.mark.parametrize(("where", "expected"), [
    ("before the response", [FAILED_500, ("complete",)]),
    ("after start, before any byte", [FAILED_500, ("complete",)]),  # the head was held back: still a 500
    ("after the first byte", [("head", 200, (), b"a", False), ("abort", "application error")]),
])
def test_asgi_app_failure(where: str, expected: list[tuple], caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        if where != "before the response":
            await send({"type": "http.response.start", "status": 200})
        if where == "after the first byte":
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
        raise RuntimeError("boom")

    assert run(asgi(app)) == expected
    assert "Exception in ASGI application" in caplog.text and "(GET /x)" in caplog.text


def test_asgi_app_returning_without_a_response_or_without_finishing_it() -> None:
    async def silent(scope: dict, receive: Any, send: Any) -> None:
        pass

    async def unfinished(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})

    assert run(asgi(silent)) == [FAILED_500, ("complete",)]
    assert run(asgi(unfinished)) == [("head", 200, (), b"a", False), ("abort", "incomplete response")]


def test_asgi_headers_refused_by_the_channel_become_a_500() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"bad name", b"v")]})
        await send({"type": "http.response.body", "body": b"x"})

    assert run(asgi(app), refuse_headers=True) == [FAILED_500, ("complete",)]


def test_asgi_disconnect_reaches_the_app_and_send_raises() -> None:
    seen: list[Any] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        await receive()  # the (empty) body
        seen.append(await receive())  # waits for the disconnect
        try:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"x"})
        except ClientDisconnected as exc:
            seen.append(exc)
            raise

    async def gone(cycle: ASGIHTTPCycle) -> None:
        await asyncio.sleep(0)
        cycle.disconnect()

    assert run(asgi(app), gone) == [("abort", "client disconnected")]
    assert seen[0] == {"type": "http.disconnect"} and isinstance(seen[1], ClientDisconnected)


def test_asgi_pathsend_goes_through_the_channel() -> None:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": OK})
        await send({"type": "http.response.pathsend", "path": "/srv/file.txt"})

    assert run(asgi(app)) == [("file", 200, tuple(OK), "/srv/file.txt", 0, None), ("complete",)]


# -- RSGI --------------------------------------------------------------------------------------------
def rsgi(app: Any, has_body: bool = False) -> Callable[[FakeChannel, asyncio.AbstractEventLoop], RSGIHTTPCycle]:
    head = RequestHead("GET", b"/x", b"/x", b"", "1.1", [], 0, False, True, False, None, b"x")
    return lambda channel, loop: RSGIHTTPCycle(app, Scope("http", head, None, None, "http"), channel, loop, has_body)


def test_rsgi_responses() -> None:
    async def text(scope: Any, protocol: Any) -> None:
        protocol.response_str(201, [("content-type", "text/plain")], "made")

    async def streamed(scope: Any, protocol: Any) -> None:
        stream = protocol.response_stream(200, [])
        await stream.send_bytes(b"a")
        await stream.send_str("b")

    async def file(scope: Any, protocol: Any) -> None:
        protocol.response_file_range(206, [], "/srv/f", 2, 5)

    assert run(rsgi(text)) == [("head", 201, ((b"content-type", b"text/plain"),), b"made", True), ("complete",)]
    assert run(rsgi(streamed)) == [("head", 200, (), b"a", False), ("body", b"b", False), ("body", b"", True),
                                   ("complete",)]
    assert run(rsgi(file)) == [("file", 206, (), "/srv/f", 2, 5), ("complete",)]


def test_rsgi_body_and_failures(caplog: pytest.LogCaptureFixture) -> None:
    async def echo(scope: Any, protocol: Any) -> None:
        protocol.response_bytes(200, [], await protocol())

    async def raises(scope: Any, protocol: Any) -> None:
        raise ValueError("boom")

    async def started(scope: Any, protocol: Any) -> None:
        await protocol.response_stream(200, []).send_bytes(b"a")
        raise ValueError("boom")

    async def silent(scope: Any, protocol: Any) -> None:
        pass

    def body(cycle: RSGIHTTPCycle) -> None:
        cycle.feed_body(b"ping")
        cycle.end_body()

    assert run(rsgi(echo, has_body=True), body) == [("want_body",), ("head", 200, (), b"ping", True), ("complete",)]
    assert run(rsgi(raises)) == [FAILED_500, ("complete",)]
    assert run(rsgi(started)) == [("head", 200, (), b"a", False), ("abort", "application error")]
    assert run(rsgi(silent)) == [FAILED_500, ("complete",)]
    assert "Exception in RSGI application (GET /x)" in caplog.text
    assert "RSGI app returned without a response (GET /x)" in caplog.text


def test_rsgi_client_gone() -> None:
    async def waits(scope: Any, protocol: Any) -> None:
        await protocol.client_disconnect()
        protocol.response_empty(200, [])  # too late: the client is gone

    async def gone(cycle: RSGIHTTPCycle) -> None:
        await asyncio.sleep(0)
        cycle.disconnect()

    with pytest.raises(RSGIProtocolClosed):  # what the app sees ...
        asyncio.run(_rsgi_begin_after_disconnect())
    assert run(rsgi(waits), gone) == [("abort", "client disconnected")]  # ... and the channel


async def _rsgi_begin_after_disconnect() -> None:
    loop = asyncio.get_running_loop()
    cycle = rsgi(None)(FakeChannel(loop), loop)
    cycle.disconnect()
    cycle.response_empty(200, [])


# -- WSGI (the app runs in a pool thread, results come back to the loop) --------------------------------
def wsgi(app: Any, body: bytes | None = None) -> Callable[[FakeChannel, asyncio.AbstractEventLoop], WSGICycle]:
    pool = ThreadPool(1)

    def make(channel: FakeChannel, loop: asyncio.AbstractEventLoop) -> WSGICycle:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}
        cycle = WSGICycle(app, environ, channel, loop, pool, None)
        if body is not None:
            cycle.input = WSGIInput(cycle, 5.0)
            environ["wsgi.input"] = cycle.input
        return cycle

    return make


def test_wsgi_list_body_streamed_body_and_file_wrapper(tmp_path: Any) -> None:
    def listed(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a", b"b"]

    def streamed(environ: dict, start_response: Any) -> Any:
        start_response("200 OK", [])
        yield b"a"
        yield b"b"

    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")

    def wrapped(environ: dict, start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "10")])
        return FileWrapper(open(path, "rb"))

    assert run(wsgi(listed)) == [("head", 200, ((b"Content-Type", b"text/plain"),), b"ab", True), ("complete",)]
    assert run(wsgi(streamed)) == [("head", 200, (), b"a", False), ("body", b"b", False), ("body", b"", True),
                                   ("complete",)]
    assert run(wsgi(wrapped)) == [("fd", 200, ((b"Content-Length", b"10"),), 0, 10), ("complete",)]


def test_wsgi_input_and_failures(caplog: pytest.LogCaptureFixture) -> None:
    def echo(environ: dict, start_response: Any) -> list[bytes]:
        data = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [data]

    def raises(environ: dict, start_response: Any) -> list[bytes]:
        raise RuntimeError("boom")

    def feed(cycle: WSGICycle) -> None:
        cycle.feed_body(b"po")
        cycle.feed_body(b"st")
        cycle.end_body()

    assert run(wsgi(echo, body=b""), feed) == [("head", 200, (), b"post", True), ("complete",)]
    assert run(wsgi(raises)) == [FAILED_500, ("complete",)]
    assert "Exception in WSGI application (GET /x)" in caplog.text


def test_wsgi_headers_refused_by_the_channel_become_a_500() -> None:
    def app(environ: dict, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Bad Name", "v")])
        return [b"x"]

    assert run(wsgi(app), refuse_headers=True) == [FAILED_500, ("complete",)]


def test_file_wrapper_region_needs_a_real_file() -> None:
    assert FileWrapper(io.BytesIO(b"abc")).region(3) is None
