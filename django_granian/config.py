"""One typed, validated configuration object.

Every option is declared once, as a field of :class:`Config` with an :func:`option` metadata
record. The CLI (``cli.py``), the ``GRANIAN_*`` environment, ``settings.GRANIAN`` (Django) and the
generated option reference in ``docs/reference.md`` are all derived from these declarations.
No I/O happens here except reading files named by options when validating them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = ["Config", "ConfigError", "OPTIONS", "Option", "option", "parse_value"]


class ConfigError(ValueError):
    """A configuration value a user must fix; the message names the option."""


@dataclass(frozen=True)
class Option:
    name: str  # field name, e.g. "http1_keep_alive"
    help: str
    kind: str  # str | int | float | bool | choice | path | dir | file | octal | list | size
    choices: tuple[str, ...] = ()
    flag_only: bool = False  # bool options without a --no- form (like Granian's --reload)
    group: str = "server"
    minimum: float | None = None
    maximum: float | None = None
    metavar: str | None = None
    granian: bool = True  # the option exists in Granian with the same meaning
    compat_only: bool = False  # accepted for Granian compatibility, has no effect here
    nullable: bool = False
    env_alias: str | None = None  # Granian's variable when its name does not follow the flag's
    aliases: tuple[str, ...] = ()  # more command-line flags for the option (a bool's get --no- forms too)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> tuple[str, ...]:
        """``flag`` and its aliases, e.g. ``("--ws", "--websockets")``."""
        return (self.flag, *self.aliases)

    @property
    def env(self) -> str:
        return "GRANIAN_" + self.name.upper()

    @property
    def envs(self) -> tuple[str, ...]:
        """Every variable that sets this option: ``env`` first, then Granian's name if it differs."""
        return (self.env, self.env_alias) if self.env_alias else (self.env,)


def option(default: Any, help: str, kind: str = "str", **kw: Any) -> Any:
    """Declare a Config field together with its CLI/env/settings metadata."""
    meta = {"help": help, "kind": kind, **kw}
    if isinstance(default, list):
        items = list(default)
        return field(default_factory=items.copy, metadata=meta)
    return field(default=default, metadata=meta)


# types a browser runs script in when opened from the site's origin (user-uploaded media)
MEDIA_ATTACHMENT_TYPES = ("text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml")
COMPRESS_TYPES = (
    "text/*", "application/json", "application/*+json", "application/x-ndjson", "application/javascript",
    "application/x-javascript", "application/ecmascript", "application/xml", "application/*+xml",
    "image/svg+xml", "application/wasm", "font/ttf", "font/otf", "application/vnd.ms-fontobject",
    "image/x-icon", "image/vnd.microsoft.icon", "image/bmp",
)
CODINGS = ("zstd", "br", "gzip")
LOG_LEVELS = ("critical", "error", "warning", "warn", "info", "debug", "notset")
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
DEFAULT_ACME_CACHE = os.path.join("~", ".local", "share", "django-granian", "acme")
DEFAULT_ACCESS_LOG_FMT = '[%(time)s] %(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(size)d B %(dt_ms).3f ms'


@dataclass
class Config:
    # --- application -------------------------------------------------------------------------
    app: str | None = option(None, "Application target, `module:attr`, `module:attr.sub` or `path/file.py:attr`.",
                             group="app", metavar="APP", nullable=True)
    interface: str = option("auto", "Application interface. `auto` detects RSGI (`__rsgi__`), ASGI (async callable) "
                            "or WSGI; `asginl` is ASGI without lifespan.", "choice",
                            choices=("auto", "asgi", "asginl", "rsgi", "wsgi"), group="app")
    factory: bool = option(False, "Treat APP as a factory: call it (no arguments) to get the application.", "bool",
                           group="app")
    working_dir: str | None = option(None, "Working directory: chdir there and put it first on sys.path.", "dir",
                                     group="app", nullable=True)
    env_files: list[str] = option([], "Environment files (dotenv syntax) to load before importing the app.", "list",
                                  group="app", metavar="FILE")
    config: str | None = option(None, "TOML file of options (keys: the option names, as in settings.GRANIAN). "
                                "Precedence: defaults < file < GRANIAN_* environment < command line.", "file",
                                group="app", nullable=True, granian=False, metavar="FILE")
    lifespan: str = option("auto", "ASGI lifespan protocol: `auto` (use it if the app supports it), `on` (require "
                           "it), `off`.", "choice", choices=("auto", "on", "off"), group="app", granian=False)
    url_path_prefix: str | None = option(None, "URL path prefix the app is mounted on: ASGI `root_path`, WSGI "
                                         "`SCRIPT_NAME`. Requests outside it get 404.", group="app", nullable=True)
    # --- binding -----------------------------------------------------------------------------
    host: str = option("127.0.0.1", "Host address to bind to.", group="binding")
    port: int = option(8000, "Port to bind to.", "int", minimum=0, maximum=65535, group="binding")
    uds: str | None = option(None, "Unix domain socket path to bind to (instead of host/port).", "path",
                             group="binding", nullable=True)
    uds_permissions: int | None = option(None, "Unix domain socket file permissions (octal, e.g. 660).", "octal",
                                         group="binding", nullable=True)
    fd: int | None = option(None, "Serve on an inherited listening socket file descriptor.", "int", minimum=0,
                            group="binding", nullable=True, granian=False)
    backlog: int = option(1024, "Maximum number of pending connections.", "int", minimum=128, group="binding")
    backpressure: int | None = option(None, "Maximum concurrent requests per worker (default: backlog / workers); "
                                      "further connections wait in the accept queue.", "int", minimum=1,
                                      group="binding", nullable=True)
    # --- HTTP --------------------------------------------------------------------------------
    http: str = option("auto", "HTTP version: `auto`, `1` or `2`.", "choice", choices=("auto", "1", "2"), group="http")
    ws: bool = option(True, "Enable WebSockets.", "bool", group="http", env_alias="GRANIAN_WEBSOCKETS",
                    aliases=("--websockets",))
    http1_buffer_size: int = option(417792, "Maximum buffered request head size for HTTP/1 (bytes); larger heads "
                                    "get 431.", "int", minimum=1024, group="http")
    http1_header_read_timeout: int = option(30000, "Time (ms) a client has to send a complete request head; then "
                                            "408 and close (slowloris protection).", "int", minimum=1, group="http")
    http1_keep_alive: bool = option(True, "Enable HTTP/1 keep-alive.", "bool", group="http")
    http1_pipeline_flush: bool = option(False, "Aggregate pipelined responses (accepted for Granian "
                                        "compatibility: pipelined responses are always coalesced).", "bool",
                                        group="http", compat_only=True)
    keep_alive_timeout: float = option(60.0, "Seconds an idle keep-alive connection is kept open.", "float",
                                       minimum=0.1, group="http", granian=False)
    request_body_timeout: float = option(60.0, "Seconds a client may pause while sending a request body (like "
                                         "nginx's client_body_timeout); then 408 (or, once the response started, "
                                         "the connection closes) and the app sees a disconnect.", "float",
                                         minimum=0.1, group="http", granian=False)
    request_body_buffering: bool = option(True, "WSGI: read the whole request body on the event loop before a "
                                          "pool thread gets the request (like nginx's proxy_request_buffering), "
                                          "so a slow upload never holds a thread; `--no-request-body-buffering` "
                                          "streams it to the app as it arrives.", "bool", group="http",
                                          granian=False)
    request_body_buffer_size: int = option(262144, "WSGI request bodies up to this size are buffered in memory; "
                                           "larger ones are spooled to a temporary file (like nginx's "
                                           "client_body_buffer_size).", "size", minimum=0, group="http",
                                           granian=False)
    request_body_temp_dir: str | None = option(None, "Directory for spooled request bodies (like nginx's "
                                               "client_body_temp_path; default: the system's temporary "
                                               "directory).", "dir", group="http", granian=False, nullable=True)
    limit_request_line: int = option(8190, "Maximum request line length (bytes); longer gets 414.", "int",
                                     minimum=64, group="http", granian=False)
    limit_request_fields: int = option(100, "Maximum number of request header fields; more gets 431.", "int",
                                       minimum=1, group="http", granian=False)
    limit_request_field_size: int = option(8190, "Maximum size of one request header field (bytes); larger gets "
                                           "431.", "int", minimum=16, group="http", granian=False)
    limit_request_body: int = option(0, "Maximum request body size in bytes (0: unlimited); larger gets 413.",
                                     "size", minimum=0, group="http", granian=False)
    forwarded_allow_ips: list[str] = option([], "Proxy addresses (IPs or CIDRs, comma separated, `*` for all) "
                                            "whose Forwarded / X-Forwarded-For / X-Forwarded-Proto headers are "
                                            "trusted for client address and scheme.", "list", group="http",
                                            granian=False, metavar="CIDRS")
    server_header: bool = option(True, "Send a `server: django-granian` header when the app sets none.", "bool",
                                 group="http", granian=False)
    graceful_timeout: float = option(30.0, "Seconds in-flight requests get to finish on shutdown before "
                                     "connections are closed.", "float", minimum=0, group="http", granian=False)
    http2_adaptive_window: bool = option(False, "Use an adaptive flow-control window for HTTP/2.", "bool",
                                         group="http2")
    http2_initial_connection_window_size: int = option(1048576, "HTTP/2 initial connection window size.", "int",
                                                       minimum=65535, maximum=2**31 - 1, group="http2")
    http2_initial_stream_window_size: int = option(1048576, "HTTP/2 initial stream window size.", "int",
                                                   minimum=1, maximum=2**31 - 1, group="http2")
    http2_keep_alive_interval: int | None = option(None, "HTTP/2 PING interval (ms).", "int", minimum=1,
                                                   group="http2", nullable=True)
    http2_keep_alive_timeout: int = option(20, "HTTP/2 PING acknowledgement timeout (s).", "int", minimum=1,
                                           group="http2")
    http2_max_concurrent_streams: int = option(200, "HTTP/2 maximum concurrent streams per connection.", "int",
                                               minimum=1, group="http2")
    http2_max_frame_size: int = option(16384, "HTTP/2 maximum frame size.", "int", minimum=16384,
                                       maximum=16777215, group="http2")
    http2_max_headers_size: int = option(16777216, "HTTP/2 maximum header list size.", "int", minimum=1,
                                         group="http2")
    http2_max_send_buffer_size: int = option(409600, "HTTP/2 maximum write buffer per stream.", "int", minimum=1,
                                             group="http2")
    # --- HTTP/3 ---------------------------------------------------------------------------------
    http3: bool = option(False, "Also serve HTTP/3 (QUIC over UDP) on the HTTPS port, with the same certificate "
                         "(`--ssl-*` or ACME); HTTP/1.1 and HTTP/2 responses advertise it with `Alt-Svc`. Needs "
                         "TLS and the `http3` extra (aioquic).", "bool", group="http3", granian=False)
    http3_port: int | None = option(None, "UDP port of the HTTP/3 listener and of its `Alt-Svc` advertisement "
                                    "(default: --port).", "int", minimum=0, maximum=65535, group="http3",
                                    granian=False, nullable=True)
    http3_alt_svc_max_age: int = option(86400, "Seconds clients may remember the `Alt-Svc: h3` advertisement "
                                        "(`ma=`); 0: do not advertise (clients then find HTTP/3 only through "
                                        "DNS HTTPS records).", "int", minimum=0, group="http3", granian=False)
    http3_idle_timeout: float = option(30.0, "Seconds a QUIC connection may be silent before it is closed "
                                       "(its max_idle_timeout transport parameter).", "float", minimum=1,
                                       group="http3", granian=False)
    http3_max_concurrent_streams: int = option(100, "Request streams a client may have open at once on one "
                                               "HTTP/3 connection (QUIC MAX_STREAMS).", "int", minimum=1,
                                               maximum=10000, group="http3", granian=False)
    http3_max_headers_size: int = option(65536, "Largest request header section (bytes, as QPACK decodes it) "
                                         "an HTTP/3 client may send (SETTINGS_MAX_FIELD_SECTION_SIZE); a "
                                         "larger HEADERS frame gets 431 or a reset.", "size", minimum=1024,
                                         group="http3", granian=False)
    http3_retry: bool = option(False, "Validate a client's address with a QUIC Retry before any handshake work "
                               "(one more round trip per new connection; against spoofed-source floods).",
                               "bool", group="http3", granian=False)
    # --- WebSockets ----------------------------------------------------------------------------
    ws_max_message_size: int = option(16777216, "Maximum WebSocket message size (bytes); larger closes with "
                                      "1009.", "size", minimum=1, group="websockets", granian=False)
    ws_ping_interval: float | None = option(None, "Seconds between server WebSocket pings (off by default).",
                                            "float", minimum=0.1, group="websockets", granian=False, nullable=True)
    ws_ping_timeout: float = option(20.0, "Seconds to wait for a pong before closing.", "float", minimum=0.1,
                                    group="websockets", granian=False)
    ws_per_message_deflate: bool = option(True, "Offer permessage-deflate compression.", "bool",
                                          group="websockets", granian=False)
    # --- TLS -----------------------------------------------------------------------------------
    ssl_certificate: str | None = option(None, "TLS certificate chain file (PEM).", "file", group="tls",
                                         nullable=True, aliases=("--ssl-cert",))
    ssl_keyfile: str | None = option(None, "TLS private key file (PEM).", "file", group="tls", nullable=True,
                                     aliases=("--ssl-key",))
    ssl_keyfile_password: str | None = option(None, "Password of an encrypted TLS key file.", group="tls",
                                              nullable=True)
    ssl_protocol_min: str = option("tls1.3", "Minimum TLS version.", "choice", choices=("tls1.2", "tls1.3"),
                                   group="tls")
    ssl_ca: str | None = option(None, "CA bundle to verify client certificates.", "file", group="tls",
                                nullable=True)
    ssl_crl: list[str] = option([], "Certificate revocation list files (PEM).", "list", group="tls", metavar="FILE")
    ssl_client_verify: bool = option(False, "Require and verify client certificates (needs --ssl-ca).", "bool",
                                     group="tls")
    # --- automatic HTTPS (ACME) -----------------------------------------------------------------
    acme_domain: list[str] = option([], "Domain name(s) to obtain a certificate for with ACME (RFC 8555) and serve "
                                    "over HTTPS; repeat for more names on the same certificate. Needs the "
                                    "`acme` extra.", "list", group="acme", granian=False, metavar="DOMAIN")
    acme_email: str | None = option(None, "Contact e-mail for the ACME account (expiry and incident notices "
                                    "from the CA).", group="acme", granian=False, nullable=True)
    acme_directory: str = option(LETS_ENCRYPT, "ACME directory URL (default: Let's Encrypt production; staging: "
                                 f"`{LETS_ENCRYPT_STAGING}`).", group="acme", granian=False, metavar="URL")
    acme_cache_dir: str = option(DEFAULT_ACME_CACHE, "Directory for the ACME account key, certificates and keys "
                                 "(created 0700, files 0600); keep it on a persistent volume.", "path",
                                 group="acme", granian=False, metavar="DIR")
    acme_challenge: str = option("auto", "ACME challenge: `tls-alpn-01` (answered on the HTTPS port), `http-01` "
                                 "(answered on --http-redirect-port), `auto` (http-01 when --http-redirect-port "
                                 "is set, else tls-alpn-01).", "choice",
                                 choices=("auto", "tls-alpn-01", "http-01"), group="acme", granian=False)
    acme_ca_bundle: str | None = option(None, "CA bundle (PEM) to trust for the ACME directory's HTTPS, e.g. a "
                                        "test CA; default: the system's.", "file", group="acme", granian=False,
                                        nullable=True)
    acme_renew_before: float = option(30.0, "Days before expiry to renew the certificate (fractions allowed; at "
                                      "most two thirds of its lifetime).",
                                      "float", minimum=0, group="acme", granian=False, metavar="DAYS")
    http_redirect_port: int | None = option(None, "Also listen for plain HTTP on this port (on --host): answer "
                                            "ACME http-01 challenges and 308-redirect everything else to "
                                            "https:// (same host, path and query).", "int", minimum=0,
                                            maximum=65535, group="acme", granian=False, nullable=True)
    hsts: str | None = option(None, "Send Strict-Transport-Security on HTTPS responses: max-age in seconds, "
                              "optionally followed by `includeSubDomains` and `preload` (e.g. `31536000; "
                              "includeSubDomains`).", group="acme", granian=False, nullable=True,
                              metavar="VALUE")
    # --- workers -------------------------------------------------------------------------------
    workers: int = option(1, "Number of worker processes (`auto`: sized from CPUs and memory).", "workers",
                          minimum=1, group="workers")
    blocking_threads: int | None = option(None, "Threads per worker for blocking work (WSGI apps run there). "
                                          "Default: 1 for ASGI/RSGI, min(32, 2 x CPUs + 1) for WSGI.", "int",
                                          minimum=1, group="workers", nullable=True)
    blocking_threads_idle_timeout: int = option(30, "Idle seconds before a blocking thread exits (accepted for "
                                                "compatibility).", "int", minimum=5, group="workers",
                                                compat_only=True)
    runtime_threads: int = option(1, "Rust runtime threads (accepted for Granian compatibility; no effect).",
                                  "int", minimum=1, group="workers", compat_only=True)
    runtime_blocking_threads: int | None = option(None, "Rust runtime blocking threads (accepted for Granian "
                                                  "compatibility; no effect).", "int", minimum=1,
                                                  group="workers", compat_only=True, nullable=True)
    runtime_mode: str = option("auto", "Rust runtime mode (accepted for Granian compatibility; no effect).",
                               "choice", choices=("auto", "mt", "st"), group="workers", compat_only=True)
    loop: str = option("auto", "Event loop: `auto` (uvloop when installed), `asyncio`, `uvloop`.", "choice",
                       choices=("auto", "asyncio", "rloop", "uvloop"), group="workers")
    task_impl: str = option("asyncio", "Task implementation (accepted for Granian compatibility; eager asyncio "
                            "tasks are always used).", "choice", choices=("asyncio", "rust"), group="workers",
                            compat_only=True)
    respawn_failed_workers: bool = option(False, "Respawn workers that exit unexpectedly.", "bool",
                                          group="workers")
    respawn_interval: float = option(3.5, "Seconds to wait before respawning a failed worker.", "float",
                                     minimum=0, group="workers")
    workers_lifetime: int | None = option(None, "Seconds after which a worker is gracefully replaced.", "int",
                                          minimum=1, group="workers", nullable=True)
    workers_max_requests: int | None = option(None, "Requests after which a worker is gracefully replaced.",
                                              "int", minimum=1, group="workers", nullable=True, granian=False)
    workers_max_requests_jitter: int = option(0, "Random 0..N added to --workers-max-requests per worker.", "int",
                                              minimum=0, group="workers", granian=False)
    workers_max_rss: int | None = option(None, "Resident memory (MiB) above which a worker is gracefully "
                                         "replaced.", "int", minimum=1, group="workers", nullable=True)
    workers_kill_timeout: float | None = option(None, "Seconds to wait for a worker to stop before killing it "
                                                "(default: --graceful-timeout + 5).", "float", minimum=1,
                                                group="workers", nullable=True)
    rss_sample_interval: float = option(30.0, "Seconds between RSS samples.", "float", minimum=0.1,
                                        group="workers")
    rss_samples: int = option(1, "Consecutive samples over --workers-max-rss before replacing a worker.", "int",
                              minimum=1, group="workers")
    process_name: str | None = option(None, "Process title prefix (uses setproctitle if installed).",
                                      group="workers", nullable=True)
    pid_file: str | None = option(None, "File to write the supervisor PID to.", "path", group="workers",
                                  nullable=True)
    # --- reload --------------------------------------------------------------------------------
    reload: bool = option(False, "Restart workers when watched files change (needs watchfiles).", "bool",
                          group="reload")
    reload_paths: list[str] = option([], "Paths to watch (default: working directory).", "list", group="reload",
                                     metavar="PATH")
    reload_ignore_dirs: list[str] = option([], "Directory names to ignore.", "list", group="reload")
    reload_ignore_patterns: list[str] = option([], "Regular expressions of file names to ignore.", "list",
                                               group="reload")
    reload_ignore_paths: list[str] = option([], "Absolute paths to ignore.", "list", group="reload")
    reload_filter: str | None = option(None, "Import path of a watchfiles filter class.", group="reload",
                                       nullable=True)
    reload_tick: int = option(50, "Milliseconds between file-change checks.", "int", minimum=10, group="reload")
    reload_ignore_worker_failure: bool = option(False, "Keep watching when a reloaded worker fails to start.",
                                                "bool", group="reload")
    # --- static files --------------------------------------------------------------------------
    static_path_route: list[str] = option([], "URL route(s) for static files (default `/static`; repeat, paired "
                                          "in order with --static-path-mount).", "list", group="static")
    static_path_mount: list[str] = option([], "Directory(ies) to serve static files from.", "list",
                                          group="static", metavar="DIR")
    static_path_dir_to_file: str | None = option(None, "File served for directory requests (e.g. index.html).",
                                                 group="static", nullable=True)
    static_path_expires: int = option(86400, "Cache-Control max-age (seconds) for static files; 0 disables.",
                                      "int", minimum=0, group="static")
    static_path_follow_symlinks: bool = option(False, "Follow symlinks that point outside a static mount.",
                                               "bool", group="static", granian=False)
    media_path_route: str = option("/media", "URL route of --media-path-mount.", group="static", granian=False)
    media_path_mount: str | None = option(None, "Directory of user-uploaded files (Django's MEDIA_ROOT) served at "
                                          "--media-path-route with defaults safe for untrusted content: "
                                          "`X-Content-Type-Options: nosniff`, attachment for script types, no "
                                          "directory index, no precompressed siblings.", "dir", group="static",
                                          granian=False, nullable=True, metavar="DIR")
    media_path_expires: int = option(0, "Cache-Control max-age (seconds) for media files; 0 sends none "
                                     "(browsers revalidate with ETag / Last-Modified).", "int", minimum=0,
                                     group="static", granian=False)
    media_attachment_types: list[str] = option(list(MEDIA_ATTACHMENT_TYPES), "Media types served from "
                                               "--media-path-mount with `Content-Disposition: attachment` "
                                               "(types a browser would run script in).", "list",
                                               group="static", granian=False, metavar="TYPE")
    serve_media: bool = option(False, "manage.py granian: serve MEDIA_ROOT at MEDIA_URL (sets --media-path-mount "
                               "and --media-path-route).", "bool", group="static", granian=False)
    # --- X-Accel-Redirect / X-Sendfile -----------------------------------------------------------------
    x_accel_route: list[str] = option([], "URL prefix(es) of internal locations: an app response with "
                                      "`X-Accel-Redirect: <route>/<path>` is replaced by that file from the "
                                      "paired --x-accel-mount (like nginx's `internal` location).", "list",
                                      group="accel", granian=False, metavar="ROUTE")
    x_accel_mount: list[str] = option([], "Directory(ies) of the internal locations, paired in order with "
                                      "--x-accel-route.", "list", group="accel", granian=False, metavar="DIR")
    x_sendfile_root: list[str] = option([], "Directories an app may name with `X-Sendfile: /abs/path` (Apache "
                                        "mod_xsendfile style); off when empty.", "list", group="accel",
                                        granian=False, metavar="DIR")
    # --- compression -----------------------------------------------------------------------------------
    compress: bool = option(False, "Compress app responses (zstd, br or gzip, by the client's Accept-Encoding) "
                            "the same way on HTTP/1.1 and HTTP/2 and for every interface.", "bool",
                            group="compression", granian=False)
    compress_encodings: list[str] = option(["zstd", "br", "gzip"], "Content codings offered, preferred first "
                                           "when the client's q-values tie (zstd needs `zstandard`, br needs "
                                           "`brotli`: pip install django-granian[compress]).", "list",
                                           group="compression", granian=False, metavar="CODING")
    compress_types: list[str] = option(list(COMPRESS_TYPES), "Compressible media types: `type/subtype`, "
                                       "`type/*` or `type/*+suffix`.", "list", group="compression",
                                       granian=False, metavar="TYPE")
    compress_min_size: int = option(512, "Responses with a smaller body (declared Content-Length, or the whole "
                                    "body when sent at once) are not compressed.", "size", minimum=0,
                                    group="compression", granian=False)
    compress_gzip_level: int = option(6, "gzip level.", "int", minimum=1, maximum=9, group="compression",
                                      granian=False)
    compress_br_level: int = option(4, "Brotli quality.", "int", minimum=0, maximum=11, group="compression",
                                    granian=False)
    compress_zstd_level: int = option(3, "zstd level (19 at most: higher levels need a window larger than "
                                      "browsers accept).", "int", minimum=1, maximum=19, group="compression",
                                      granian=False)
    compress_with_cookies: bool = option(False, "Also compress responses that set cookies (off by default: "
                                         "BREACH; see docs/compression.md).", "bool", group="compression",
                                         granian=False)
    # --- logging and metrics ---------------------------------------------------------------------
    log: bool = option(True, "Enable logging (an error that stops the server is printed to stderr either way, "
                       "as one `Error: ...` line).", "bool", group="logging", env_alias="GRANIAN_LOG_ENABLED")
    log_level: str = option("info", "Log level.", "choice", choices=LOG_LEVELS, group="logging")
    log_config: str | None = option(None, "Logging configuration file (JSON dictConfig).", "file",
                                    group="logging", nullable=True)
    access_log: bool = option(False, "Enable the access log.", "bool", group="logging",
                              env_alias="GRANIAN_LOG_ACCESS_ENABLED", aliases=("--log-access",))
    access_log_fmt: str = option(DEFAULT_ACCESS_LOG_FMT, "Access log format (%-style with atoms addr, time, "
                                 "dt_ms, status, path, query_string, method, scheme, protocol, size, "
                                 "header{name}).", group="logging", env_alias="GRANIAN_LOG_ACCESS_FMT")
    metrics: bool = option(False, "Serve Prometheus metrics.", "bool", group="metrics",
                           env_alias="GRANIAN_METRICS_ENABLED")
    metrics_scrape_interval: int = option(15, "Seconds between metrics aggregations.", "int", minimum=1,
                                          group="metrics")
    metrics_address: str = option("127.0.0.1", "Metrics endpoint address.", group="metrics")
    metrics_port: int = option(9090, "Metrics endpoint port.", "int", minimum=0, maximum=65535, group="metrics")

    # ---------------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "settings") -> Config:
        """Build a Config from option names -> values (strings are converted); unknown keys raise."""
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = key.lstrip("-").replace("-", "_").lower()
            if name not in OPTIONS:
                raise ConfigError(f"unknown option {key!r} in {source}{_suggest(name)}")
            kwargs[name] = parse_value(OPTIONS[name], value, source=source)
        return cls(**kwargs).validate()

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes).validate()

    def non_defaults(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if value != default and f.name != "app":
                out[f.name] = value
        return out

    # -- derived values ---------------------------------------------------------------------------
    @property
    def static_mounts(self) -> list[tuple[str, str]]:
        routes = self.static_path_route or ["/static"]
        return list(zip(routes, self.static_path_mount, strict=False))

    @property
    def kill_timeout(self) -> float:
        return self.workers_kill_timeout if self.workers_kill_timeout is not None else self.graceful_timeout + 5

    def threads_for(self, interface: str) -> int:
        if self.blocking_threads is not None:
            return self.blocking_threads
        return min(32, 2 * (os.cpu_count() or 1) + 1) if interface == "wsgi" else 1

    def validate(self) -> Config:
        """Cross-option checks; raises ConfigError naming the option."""
        for name, opt in OPTIONS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if opt.kind in ("int", "float", "size", "workers") and not isinstance(value, bool):
                if opt.minimum is not None and value < opt.minimum:
                    raise ConfigError(f"{opt.flag}: {value} is below the minimum {_num(opt.minimum)}")
                if opt.maximum is not None and value > opt.maximum:
                    raise ConfigError(f"{opt.flag}: {value} is above the maximum {_num(opt.maximum)}")
            if opt.kind == "choice" and value not in opt.choices:
                raise ConfigError(f"{opt.flag}: {value!r} is not one of {', '.join(opt.choices)}")
        if self.url_path_prefix is not None:
            prefix = self.url_path_prefix.rstrip("/")
            if prefix and not prefix.startswith("/"):
                raise ConfigError("--url-path-prefix must start with '/'")
            self.url_path_prefix = prefix or None
        if self.static_path_route and len(self.static_path_route) != len(self.static_path_mount):
            raise ConfigError("--static-path-route and --static-path-mount must be given the same number of times "
                              f"({len(self.static_path_route)} routes, {len(self.static_path_mount)} mounts)")
        for route in self.static_path_route:
            if not route.startswith("/"):
                raise ConfigError(f"--static-path-route {route!r} must start with '/'")
        for mount in self.static_path_mount:
            if not os.path.isdir(mount):
                raise ConfigError(f"--static-path-mount {mount!r} is not a directory")
        if len(self.x_accel_route) != len(self.x_accel_mount):
            raise ConfigError("--x-accel-route and --x-accel-mount must be given the same number of times "
                              f"({len(self.x_accel_route)} routes, {len(self.x_accel_mount)} mounts)")
        for route in (*self.x_accel_route, self.media_path_route):
            if not route.startswith("/"):
                raise ConfigError(f"route {route!r} must start with '/'")
        for directory in (*self.x_accel_mount, *self.x_sendfile_root):
            if not os.path.isdir(directory):
                raise ConfigError(f"{directory!r} (--x-accel-mount / --x-sendfile-root) is not a directory")
        for coding in self.compress_encodings:
            if coding not in CODINGS:
                raise ConfigError(f"--compress-encodings: {coding!r} is not one of {', '.join(CODINGS)}")
        from .compression.policy import TypeMatcher

        try:
            TypeMatcher(self.compress_types)
            TypeMatcher(self.media_attachment_types)
        except ValueError as exc:
            raise ConfigError(f"--compress-types / --media-attachment-types: {exc}") from None
        if self.ssl_keyfile and not self.ssl_certificate:
            raise ConfigError("--ssl-keyfile needs --ssl-certificate")
        if self.ssl_certificate and not self.ssl_keyfile:
            raise ConfigError("--ssl-certificate needs --ssl-keyfile")
        if self.ssl_client_verify and not self.ssl_ca:
            raise ConfigError("--ssl-client-verify needs --ssl-ca")
        if self.uds_permissions is not None and self.uds is None:
            raise ConfigError("--uds-permissions needs --uds")
        self._validate_https()
        self._validate_http3()
        self.forwarded_networks()  # validates the CIDRs
        if self.log_config:
            import json

            try:
                with open(self.log_config) as fh:
                    json.load(fh)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"--log-config {self.log_config!r}: not a readable JSON file ({exc})") from None
        return self

    @property
    def acme_challenge_type(self) -> str:
        """The ACME challenge actually used (``auto`` resolved)."""
        if self.acme_challenge != "auto":
            return self.acme_challenge
        return "http-01" if self.http_redirect_port is not None else "tls-alpn-01"

    @property
    def tls_enabled(self) -> bool:
        return bool(self.ssl_certificate or self.acme_domain)

    def _validate_https(self) -> None:
        """--acme-*, --http-redirect-port and --hsts: checks without I/O (the cache directory is checked
        when the server starts, by ``acme.check``)."""
        domains = []
        for raw in self.acme_domain:
            for name in raw.replace(",", " ").split():
                domains.append(_hostname(name))
        self.acme_domain = list(dict.fromkeys(domains))
        if self.acme_domain:
            if self.ssl_certificate:
                raise ConfigError("--acme-domain and --ssl-certificate cannot be combined: the certificate comes "
                                  "either from ACME or from your files")
            if self.uds:
                raise ConfigError("--acme-domain cannot be combined with --uds: the CA must reach a TCP port "
                                  "(let the proxy in front of the socket terminate TLS)")
            if self.acme_challenge_type == "http-01" and self.http_redirect_port is None:
                raise ConfigError("--acme-challenge http-01 needs --http-redirect-port (the CA connects to port "
                                  "80 of the domain)")
        if self.acme_email is not None:
            local, at, host = self.acme_email.partition("@")
            if not (local and at and "." in host and not any(c.isspace() for c in self.acme_email)):
                raise ConfigError(f"--acme-email {self.acme_email!r} is not an e-mail address")
        if not self.acme_directory.lower().startswith("https://") or len(self.acme_directory) <= len("https://"):
            raise ConfigError(f"--acme-directory {self.acme_directory!r} must be an https:// URL (RFC 8555 "
                              "requires HTTPS)")
        if self.http_redirect_port is not None:
            if not self.tls_enabled:
                raise ConfigError("--http-redirect-port redirects to HTTPS: it needs --ssl-certificate or "
                                  "--acme-domain")
            if self.uds:
                raise ConfigError("--http-redirect-port cannot be combined with --uds: the redirect target "
                                  "(https://host:port) would be unknown; redirect in the proxy in front instead")
            if self.http_redirect_port == self.port and self.port != 0:
                raise ConfigError(f"--http-redirect-port {self.http_redirect_port} is the same as --port")
        if self.hsts is not None:
            if not self.tls_enabled:
                raise ConfigError("--hsts needs HTTPS (--ssl-certificate or --acme-domain)")
            self.hsts = hsts_value(self.hsts)

    def _validate_http3(self) -> None:
        if not self.http3:
            if self.http3_port is not None:
                raise ConfigError("--http3-port needs --http3")
            return
        if not self.tls_enabled:
            raise ConfigError("--http3 needs TLS (QUIC is always encrypted): --ssl-certificate and --ssl-keyfile, "
                              "or --acme-domain")
        if self.uds:
            raise ConfigError("--http3 listens on UDP --host:--http3-port; it cannot be combined with --uds")
        if self.http3_port is not None and self.http3_port == self.http_redirect_port:
            raise ConfigError(f"--http3-port {self.http3_port} is the same as --http-redirect-port")

    def forwarded_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
        """Trusted proxy networks; None when all are trusted (``*``)."""
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in self.forwarded_allow_ips:
            for part in item.split(","):
                part = part.strip()
                if not part:
                    continue
                if part == "*":
                    return None
                try:
                    nets.append(ipaddress.ip_network(part, strict=False))
                except ValueError:
                    raise ConfigError(f"--forwarded-allow-ips: {part!r} is not an IP address or CIDR") from None
        return nets


_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def _hostname(name: str) -> str:
    """A DNS name an ACME CA can issue for (lower-cased, no trailing dot); ConfigError otherwise."""
    host = name.strip().lower().rstrip(".")
    problem = ""
    if host.startswith("*."):
        problem = "wildcard names need the dns-01 challenge, which is not supported"
    elif not host or len(host) > 253:
        problem = "not a host name"
    else:
        try:
            ipaddress.ip_address(host.strip("[]"))
            problem = "an IP address, not a host name"
        except ValueError:
            labels = host.split(".")
            if len(labels) < 2:
                problem = "not a fully qualified host name (no dot)"
            for label in labels:
                if not label or len(label) > 63 or not set(label) <= _LABEL_CHARS or label[0] == "-" \
                        or label[-1] == "-":
                    problem = "not a host name (letters, digits and inner hyphens, dot separated)"
                    break
    if problem:
        raise ConfigError(f"--acme-domain {name!r}: {problem}")
    return host


def hsts_value(raw: str) -> str:
    """``31536000``, ``max-age=31536000; includeSubDomains; preload`` ... -> the header value."""
    parts = [p.strip() for p in raw.replace(",", ";").split(";") if p.strip()]
    max_age = None
    flags = []
    for part in parts:
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if part.isdigit():
            key, value = "max-age", part
        if key == "max-age" and value.strip().isdigit() and max_age is None:
            max_age = int(value)
        elif key == "includesubdomains" and not value and "includeSubDomains" not in flags:
            flags.append("includeSubDomains")
        elif key == "preload" and not value and "preload" not in flags:
            flags.append("preload")
        else:
            raise ConfigError(f"--hsts {raw!r}: unexpected {part!r} (expected max-age seconds, includeSubDomains, "
                              "preload)")
    if max_age is None:
        raise ConfigError(f"--hsts {raw!r}: max-age (seconds) is required, e.g. --hsts 31536000")
    return "; ".join([f"max-age={max_age}", *flags])


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _build_options() -> dict[str, Option]:
    out = {}
    for f in dataclasses.fields(Config):
        meta = dict(f.metadata)
        out[f.name] = Option(name=f.name, **meta)
    return out


OPTIONS: dict[str, Option] = _build_options()

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}
_SIZE_UNITS = {"k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
               "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


def _suggest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, OPTIONS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _number(kind: Callable[[Any], Any], value: Any, expected: str) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected {expected}") from None


def parse_value(opt: Option, value: Any, *, source: str = "command line") -> Any:
    """Convert a raw value (usually a string) to the option's type; errors name the option."""
    where = f"{opt.flag}" if source == "command line" else f"{opt.flag} (from {source})"
    kind = opt.kind
    try:
        if value is None:
            if opt.nullable:
                return None
            raise ValueError("a value is required")
        if kind == "list":
            if isinstance(value, str):
                return value.split()
            if isinstance(value, Iterable):
                return [str(v) for v in value]
            raise ValueError("expected a list")
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError("expected true/false")
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return _number(int, value, "an integer")
        if kind == "workers":
            if isinstance(value, str) and value.strip().lower() == "auto":
                from .sizing import auto_workers

                return auto_workers()
            return _number(int, value, "an integer or auto")
        if kind == "float":
            return _number(float, value, "a number")
        if kind == "octal":
            if isinstance(value, str):
                return _number(lambda text: int(text, 8), value, "an octal mode like 660")
            return int(value)
        if kind == "size":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            text = str(value).strip().lower().replace("_", "")
            num = text.rstrip("abcdefghijklmnopqrstuvwxyz")
            unit = text[len(num):].strip()
            if unit and unit not in _SIZE_UNITS:
                raise ValueError(f"unknown size unit {unit!r}")
            return int(float(num) * _SIZE_UNITS.get(unit, 1))
        if kind == "choice":
            text = str(value).strip().lower()
            if text not in opt.choices:
                raise ValueError(f"expected one of {', '.join(opt.choices)}")
            return text
        if kind in ("file", "dir", "path", "str"):
            text = str(value)
            if kind == "file" and not os.path.isfile(text):
                raise ValueError(f"file {text!r} does not exist")
            if kind == "dir" and not os.path.isdir(text):
                raise ValueError(f"directory {text!r} does not exist")
            return text
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: invalid value {value!r}: {exc}") from None
    raise ConfigError(f"{where}: unsupported option kind {kind}")


def option_names() -> Sequence[str]:
    return list(OPTIONS)


def env_value(opt: Option, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, value) of the first of ``opt.envs`` set in ``environ``; None when none is.
    Unknown GRANIAN_ names are ignored."""
    for var in opt.envs:
        if var in environ:
            return var, environ[var]
    return None


Converter = Callable[[Any], Any]
