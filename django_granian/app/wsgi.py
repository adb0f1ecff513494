"""WSGI (PEP 3333) interface: apps run in a thread pool; the event loop keeps all socket I/O.

Per request the worker thread builds nothing but the environ; results come back to the loop with
one ``call_soon_threadsafe`` for the common single-body response. Request bodies are read whole on
the event loop before a pool thread gets the request (:class:`~.wsgi_io.BufferedBody`: in memory up
to ``--request-body-buffer-size``, then in a temporary file), so a slow upload never holds a thread;
with ``--no-request-body-buffering`` they stream into ``wsgi.input`` (blocking reads in the app
thread, :class:`~.wsgi_io.WSGIInput`). Responses stream out with backpressure; a body sent at once
and a ``wsgi.file_wrapper`` over a regular file (sent from the event loop with sendfile) leave the
thread at once, whatever the client's speed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any, Callable, Iterable

from ..protocol.http11 import RequestHead
from .cycle import INTERNAL_ERROR_BODY, INTERNAL_ERROR_HEADERS
from .encoding import encode_headers
from .interface import HTTPInterface
from .scope import strip_prefix, wsgi_path
from .threadpool import ThreadPool
from .wsgi_io import EMPTY_INPUT, BufferedBody, FileWrapper, WSGIInput

logger = logging.getLogger("django_granian.app")

STREAM_HIGH_WATER = 256 * 1024
_STATUS_CODES: dict[str, int] = {}  # valid WSGI status lines -> their code
_FILE_TASKS: set[asyncio.Task] = set()  # file responses being sent by the event loop


class WSGICycle:
    __slots__ = ("app", "environ", "channel", "loop", "executor", "input", "disconnected", "status", "headers",
                 "head_sent", "sent", "written", "finished", "length", "buffered", "body", "started")

    def __init__(self, app: Any, environ: dict, channel: Any, loop: asyncio.AbstractEventLoop,
                 executor: ThreadPool, body_input: WSGIInput | None) -> None:
        self.app = app
        self.environ = environ
        self.channel = channel
        self.loop = loop
        self.executor = executor
        self.input = body_input
        self.disconnected = False
        self.status: int | None = None
        self.headers: Any = ()
        self.length = -1  # the response's content-length, -1 when it has none
        self.head_sent = False
        self.sent = 0  # bytes handed to the loop (app thread)
        self.written = 0  # bytes written by the loop
        self.finished = False
        self.buffered: BufferedBody | None = None  # the request body being read before the app runs
        self.body: BufferedBody | None = None  # ... and once complete, until the app is done with it
        # run() was called: the transport may feed (and end) the body before it, when the body came in
        # the head's packet; whichever of run() and end_body() comes second submits the app, once
        self.started = False

    # -- loop thread ---------------------------------------------------------------------------
    def run(self) -> None:
        self.started = True
        if self.buffered is not None:
            self.channel.want_body(self)  # (100 Continue) the app runs once the whole body is here
            return
        if self.finished:  # the body could not be buffered: answered 500 already
            return
        self.executor.submit(self._work)

    def feed_body(self, data: bytes) -> None:
        buffered = self.buffered
        if buffered is not None:
            try:
                buffered.write(data)
            except OSError as exc:
                self._buffer_failed(exc)
        elif self.input is not None:
            self.input.feed(data)

    def end_body(self) -> None:
        buffered = self.buffered
        if buffered is not None:
            self.buffered = None
            if self.disconnected or self.finished:
                buffered.close()
                return
            environ = self.environ
            try:
                environ["wsgi.input"] = buffered.reader()
            except OSError as exc:
                self.buffered = buffered
                self._buffer_failed(exc)
                return
            environ["CONTENT_LENGTH"] = str(buffered.size)  # known now, also for a chunked request
            self.body = buffered
            if self.started:  # else run() submits it
                self.executor.submit(self._work)
        elif self.input is not None:
            self.input.end()

    def disconnect(self) -> None:
        self.disconnected = True
        buffered = self.buffered
        if buffered is not None:  # gone before its body was complete: the app never runs
            self.buffered = None
            buffered.close()
        if self.input is not None:
            self.input.wake()

    def _buffer_failed(self, exc: OSError) -> None:
        """The body could not be spooled (disk full, --request-body-temp-dir gone): 500, the app never runs."""
        buffered, self.buffered = self.buffered, None
        if buffered is not None:
            buffered.close()
        logger.error("cannot buffer the request body of %s %s: %s", self.environ.get("REQUEST_METHOD"),
                     self.environ.get("PATH_INFO"), exc)
        self.head_sent = True
        self._deliver_head(500, INTERNAL_ERROR_HEADERS, INTERNAL_ERROR_BODY, True)

    def _deliver_head(self, status: int, headers: Any, body: bytes, end: bool) -> None:
        self.written += len(body)
        if self.finished or self.disconnected:
            return
        try:
            self.channel.send_head(status, headers, body, end)
        except (TypeError, ValueError) as exc:
            self._headers_refused(exc)
            end = True
            self.disconnected = True  # stop the app thread from sending more
        if end:
            self._finish()

    def _deliver_body(self, body: bytes, end: bool) -> None:
        self.written += len(body)
        if self.finished or self.disconnected:
            return
        self.channel.send_body(body, end)
        if end:
            self._finish()

    def _deliver_file(self, fd: int, offset: int, count: int) -> None:
        if self.finished or self.disconnected:
            os.close(fd)
            return
        task = self.loop.create_task(self._send_file(fd, offset, count))
        _FILE_TASKS.add(task)  # the loop keeps only a weak reference to its tasks
        task.add_done_callback(_FILE_TASKS.discard)

    async def _send_file(self, fd: int, offset: int, count: int) -> None:
        try:
            await self.channel.send_fd_response(self.status or 500, self.headers, fd, offset, count)
        except (TypeError, ValueError) as exc:
            self._headers_refused(exc)
        except OSError as exc:
            logger.debug("file response ended early: %r", exc)
            self._abort("file response failed")
            return
        finally:
            self.written = self.sent
        self._finish()

    def _headers_refused(self, exc: Exception) -> None:
        """The channel refused the app's headers (nothing was written): log it and answer 500."""
        logger.error("invalid WSGI response headers (%s %s): %s", self.environ.get("REQUEST_METHOD"),
                     self.environ.get("PATH_INFO"), exc)
        self.channel.send_head(500, INTERNAL_ERROR_HEADERS, INTERNAL_ERROR_BODY, True)

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.channel.response_complete(self)

    def _abort(self, reason: str) -> None:
        if not self.finished:
            self.finished = True
            self.channel.abort(reason)

    async def _drain(self) -> None:
        await self.channel.drain()

    # -- app thread -------------------------------------------------------------------------------
    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        code = _STATUS_CODES.get(status) if type(status) is str else None
        if code is None:
            if not isinstance(status, str) or len(status) < 3 or not status[:3].isdigit() \
                    or status[3:4] not in ("", " "):
                raise ValueError(f"invalid WSGI status {status!r}")
            code = int(status[:3])
            if len(_STATUS_CODES) < 1024:
                _STATUS_CODES[status] = code
        try:
            entry = encode_headers(headers)
        except TypeError as exc:
            raise TypeError(f"WSGI {exc}") from None
        self.headers, self.length = entry
        self.status = code
        return self._write

    def _write(self, data: bytes) -> None:
        """The legacy ``write()`` callable returned by start_response."""
        if data:
            self._send(data, False)

    def _send(self, data: bytes, end: bool) -> None:
        if self.disconnected:
            raise OSError("client disconnected")
        call = self.loop.call_soon_threadsafe
        if not self.head_sent:
            if self.status is None:
                raise AssertionError("WSGI app sent a body before calling start_response")
            self.head_sent = True
            self.sent += len(data)
            call(self._deliver_head, self.status, self.headers, data, end)
        else:
            self.sent += len(data)
            call(self._deliver_body, data, end)
        if not end and (self.sent - self.written > STREAM_HIGH_WATER or self.channel.writing_paused):
            asyncio.run_coroutine_threadsafe(self._drain(), self.loop).result()

    def _work(self) -> None:
        result: Any = None
        try:
            result = self.app(self.environ, self.start_response)
            if type(result) is list or type(result) is tuple:
                body = b"".join(result) if len(result) != 1 else result[0]
                if type(body) is not bytes:
                    body = bytes(body)
                self._send(body, True)
                return
            self._send_iterable(result)
        except BaseException as exc:  # noqa: BLE001
            self._failed(exc)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    logger.exception("exception in WSGI iterable close()")
            body = self.body
            if body is not None:  # the spooled request body: its temporary file goes away
                self.body = None
                body.close()

    def _send_iterable(self, result: Iterable[bytes]) -> None:
        """Send a response body that is not a list: chunk by chunk, stopping at its Content-Length.

        A ``wsgi.file_wrapper`` over a regular file (Django's ``FileResponse``, Flask's ``send_file``)
        is handed to the event loop instead, which sends it with ``os.sendfile`` where it can. This
        thread returns at once, and the app's ``close()`` runs while the file is still going out."""
        if type(result) is FileWrapper and not self.head_sent and self.status is not None:
            region = result.region(self.length)
            if region is not None:
                self.head_sent = True
                self.sent += region[2]
                self.loop.call_soon_threadsafe(self._deliver_file, *region)
                return
        length = self.length
        total = 0
        for chunk in result:
            if self.disconnected:
                return
            if not chunk:
                continue
            total += len(chunk)
            self._send(bytes(chunk), total == length)
            if total == length:
                return
        self._send(b"", True)

    def _failed(self, exc: BaseException) -> None:
        env = self.environ
        if self.disconnected and isinstance(exc, OSError):
            logger.debug("client disconnected during WSGI response: %r", exc)
            return
        if not self.head_sent:
            logger.error("Exception in WSGI application (%s %s)", env.get("REQUEST_METHOD"),
                         env.get("PATH_INFO"), exc_info=exc)
            self.head_sent = True
            self.loop.call_soon_threadsafe(self._deliver_head, 500, INTERNAL_ERROR_HEADERS, INTERNAL_ERROR_BODY, True)
        else:
            logger.error("Exception in WSGI application after the response started (%s %s); closing the "
                         "connection", env.get("REQUEST_METHOD"), env.get("PATH_INFO"), exc_info=exc)
            self.loop.call_soon_threadsafe(self._abort, "application error")
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc


class WSGIInterface(HTTPInterface):
    name = "wsgi"
    cycle_class: type[WSGICycle] = WSGICycle

    def __init__(self, app: Any, server: Any, threads: int, multiprocess: bool = False,
                 initializer: Callable[[], None] | None = None) -> None:
        super().__init__(app, server)
        self.threads = threads
        self.executor = ThreadPool(threads, initializer=initializer)
        self.multiprocess = multiprocess
        self.body_timeout = server.body_timeout
        config = server.config
        self.buffering = config.request_body_buffering
        self.buffer_size = config.request_body_buffer_size
        self.temp_dir = config.request_body_temp_dir
        script_name = server.root_path
        self.base_environ = {
            "SCRIPT_NAME": script_name,
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": threads > 1,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            # wsgi.input returns b"" at the end of the body, also for chunked requests without a
            # CONTENT_LENGTH (the gunicorn/mod_wsgi convention werkzeug relies on)
            "wsgi.input_terminated": True,
        }

    def cycle(self, channel: Any, head: RequestHead, client: Any, scheme: str) -> WSGICycle:
        environ = build_environ(self.base_environ, head, client, channel.server_addr, scheme,
                                self.server.prefix_bytes)
        has_body = head.chunked or head.content_length > 0
        cycle = self.cycle_class(self.app, environ, channel, self.loop, self.executor, None)
        if not has_body:
            environ["wsgi.input"] = EMPTY_INPUT
        elif self.buffering:
            cycle.buffered = BufferedBody(self.buffer_size, self.temp_dir)
            environ["wsgi.input"] = EMPTY_INPUT  # replaced by the body once it is complete
        else:
            cycle.input = WSGIInput(cycle, self.body_timeout)
            environ["wsgi.input"] = cycle.input
        return cycle

    async def shutdown(self, timeout: float) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def describe(self) -> str:
        return f"WSGI ({self.threads} threads)"


def build_environ(base: dict, head: RequestHead, client: Any, server_addr: Any, scheme: str,
                  prefix: bytes) -> dict:
    """The WSGI environ of one request. Everything but the client address follows from the head,
    so a memoised (shared) head keeps its environ as a template and each request copies it."""
    if head.shared:
        derived = head.derived
        key = (base, server_addr, scheme, prefix)
        if derived is not None and derived[0] == key:
            environ = derived[1].copy()
        else:
            template = _head_environ(base, head, server_addr, scheme, prefix)
            head.derived = (key, template)
            environ = template.copy()
    else:
        environ = _head_environ(base, head, server_addr, scheme, prefix)
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    return environ


def _head_environ(base: dict, head: RequestHead, server_addr: Any, scheme: str, prefix: bytes) -> dict:
    raw_path = head.raw_path
    if prefix:
        raw_path = strip_prefix(raw_path, prefix) or b""
    environ = base.copy()
    environ["REQUEST_METHOD"] = head.method
    environ["PATH_INFO"] = wsgi_path(raw_path)
    environ["QUERY_STRING"] = head.query.decode("latin-1")
    environ["SERVER_PROTOCOL"] = "HTTP/" + head.http_version
    environ["wsgi.url_scheme"] = scheme
    environ["RAW_URI"] = head.target.decode("latin-1")
    if server_addr:
        environ["SERVER_NAME"] = str(server_addr[0])
        environ["SERVER_PORT"] = str(server_addr[1]) if server_addr[1] is not None else ""
    else:
        environ["SERVER_NAME"] = "localhost"
        environ["SERVER_PORT"] = ""
    if head.content_length:
        environ["CONTENT_LENGTH"] = str(head.content_length)
    for name, value in head.headers:
        if name == b"content-type":
            environ["CONTENT_TYPE"] = value.decode("latin-1")
            continue
        if name == b"content-length":
            continue
        if b"_" in name:
            continue  # "X_Forwarded_For" would collide with "X-Forwarded-For" in the environ
        key = _ENV_NAMES.get(name)
        if key is None:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            if len(_ENV_NAMES) < 1024:
                _ENV_NAMES[name] = key
        val = value.decode("latin-1")
        old = environ.get(key)
        if old is not None:
            val = old + ("; " if name == b"cookie" else ",") + val
        environ[key] = val
    if "HTTP_HOST" in environ:
        host = environ["HTTP_HOST"]
        if host.startswith("["):
            environ["SERVER_NAME"] = host.split("]")[0] + "]"
        else:
            environ["SERVER_NAME"] = host.rsplit(":", 1)[0] if ":" in host else host
    return environ


_ENV_NAMES: dict[bytes, str] = {}


def iter_close(result: Iterable[bytes]) -> None:  # pragma: no cover - helper for adapters
    close = getattr(result, "close", None)
    if close is not None:
        close()
