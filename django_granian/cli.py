"""``django-granian [OPTIONS] APP``: flags and ``GRANIAN_*`` environment variables mirror Granian's."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import re
import sys
from typing import Any, Mapping, Sequence

from . import __version__
from .config import OPTIONS, Config, ConfigError, Option, env_value, parse_value
from .logs import FATAL_PREFIX

GROUP_TITLES = {
    "app": "Application", "binding": "Binding", "http": "HTTP", "http2": "HTTP/2", "http3": "HTTP/3",
    "websockets": "WebSockets", "tls": "TLS", "acme": "Automatic HTTPS (ACME)", "workers": "Workers and runtime",
    "reload": "Reload", "static": "Static and media files", "accel": "X-Accel-Redirect / X-Sendfile",
    "compression": "Compression", "logging": "Logging", "metrics": "Metrics",
}


USAGE = "django-granian [OPTIONS] APP"
DESCRIPTION = ("A production HTTP/1.1, HTTP/2 and WebSocket server for ASGI, WSGI and RSGI apps "
               "(a Python implementation of Granian's interface).")
APP_HELP = "Application target: module:attr, module:attr.sub or path/file.py:attr [env: GRANIAN_APP]"
# what `-h` shows (`--help` shows every option, grouped)
SHORT_HELP_OPTIONS = (
    "interface", "host", "port", "uds", "workers", "blocking_threads", "http", "ws", "ssl_certificate",
    "ssl_keyfile", "reload", "log_level", "access_log", "static_path_route", "static_path_mount", "working_dir",
    "env_files", "config", "forwarded_allow_ips", "graceful_timeout",
)


def usage_error_text(parser: argparse.ArgumentParser, message: str) -> str:
    """argparse's error message as one actionable line (without the ``Error: `` prefix)."""
    if message.startswith("unrecognized arguments: "):
        words = message[len("unrecognized arguments: "):].split()
        unknown = next((w for w in words if w.startswith("-")), None)
        if unknown is None:
            return (f"unexpected argument {words[0]!r} (APP is given once; options start with --); "
                    "see --help")
        name = unknown.split("=", 1)[0]
        close = difflib.get_close_matches(name, _option_strings(parser), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"unknown option {name}{hint}; see --help"
    match = re.match(r"ambiguous option: (\S+?)(?:=\S*)? could match (.*)$", message)
    if match:
        candidates = match.group(2).split(", ")
        listed = ", ".join(candidates[:-1]) + " or " + candidates[-1] if len(candidates) > 1 else candidates[0]
        return f"ambiguous option {match.group(1)} (could be {listed}); see --help"
    match = re.match(r"argument (\S+?)(?:/\S+)?: expected one argument$", message)
    if match:
        return f"option {match.group(1)} needs a value; see --help"
    match = re.match(r"argument (\S+?)(?:/\S+)?: ignored explicit argument (.*)$", message)
    if match:
        flag, value = match.group(1), match.group(2).strip("'")
        return f"option {flag} takes no value (got {flag}={value}); see --help"
    return f"{message}; see --help"


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [s for s in parser._option_string_actions if s.startswith("--")]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, and exit code 2 like click
        self.exit(2, f"{FATAL_PREFIX}{usage_error_text(self, message)}\n")


class _ShortHelp(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kw: Any) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        sys.stdout.write(short_help())
        parser.exit()


def _add_option(group: Any, name: str, opt: Option, *, env: bool = True) -> None:
    help_text = opt.help + _default_text(name, opt) + (f" [env: {' or '.join(opt.envs)}]" if env else "")
    help_text = help_text.replace("%", "%%")
    flags = opt.flags
    if opt.kind == "bool":
        if opt.flag_only:
            group.add_argument(*flags, dest=name, action="store_const", const=True,
                               default=argparse.SUPPRESS, help=help_text)
        else:  # --ws/--no-ws, and --websockets/--no-websockets for an alias
            group.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
    elif opt.kind == "list":
        group.add_argument(*flags, dest=name, action="append", default=argparse.SUPPRESS,
                           metavar=opt.metavar or "TEXT", help=help_text)
    else:
        metavar = opt.metavar or ("{" + "|".join(opt.choices) + "}" if opt.choices else opt.kind.upper())
        group.add_argument(*flags, dest=name, default=argparse.SUPPRESS, metavar=metavar, help=help_text)


def add_option_arguments(parser: argparse.ArgumentParser, *, skip: Sequence[str] = ()) -> None:
    """Add every Config option to an argparse parser (used by the CLI and the Django command)."""
    groups: dict[str, Any] = {}
    for name, opt in OPTIONS.items():
        if name == "app" or name in skip:
            continue
        group = groups.get(opt.group)
        if group is None:
            group = groups[opt.group] = parser.add_argument_group(GROUP_TITLES.get(opt.group, opt.group))
        _add_option(group, name, opt)


def _default_text(name: str, opt: Option) -> str:
    default = Config.__dataclass_fields__[name].default  # MISSING for the lists (default_factory)
    if opt.kind == "bool":
        return f" [default: {'enabled' if default else 'disabled'}]"
    if default is None or default is dataclasses.MISSING or isinstance(default, list) or default == "":
        return ""
    return f" [default: {default}]"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="django-granian", usage=USAGE, description=DESCRIPTION, add_help=False,
                     formatter_class=argparse.HelpFormatter)
    parser.add_argument("app", nargs="?", default=argparse.SUPPRESS, metavar="APP", help=APP_HELP)
    parser.add_argument("-h", action=_ShortHelp, help="show the most used options and exit")
    parser.add_argument("--help", action="help", help="show every option, grouped, and exit")
    parser.add_argument("--version", action="version", version=f"django-granian {__version__}")
    add_option_arguments(parser)
    return parser


def short_help() -> str:
    """``-h``: the usage line and the options most people need; ``--help`` has all of them."""
    parser = argparse.ArgumentParser(
        prog="django-granian", usage=USAGE, description=DESCRIPTION, add_help=False,
        epilog=f"This is {len(SHORT_HELP_OPTIONS)} of the {len(OPTIONS) - 1} options. Every option, grouped, "
               "with its GRANIAN_* environment variable: django-granian --help (or docs/reference.md).")
    parser.add_argument("app", metavar="APP", help=APP_HELP)
    group = parser.add_argument_group("Most used options")
    for name in SHORT_HELP_OPTIONS:
        _add_option(group, name, OPTIONS[name], env=False)
    group.add_argument("-h", action="store_true", help="show this list and exit")
    group.add_argument("--help", action="store_true", help="show every option, grouped, and exit")
    group.add_argument("--version", action="store_true", help="show the version and exit")
    return parser.format_help()


def collect_values(cli: Mapping[str, Any], environ: Mapping[str, str],
                   base: Mapping[str, tuple[Any, str]] | None = None) -> dict[str, tuple[Any, str]]:
    """Merge sources in precedence order (base < --config file < env < command line) into
    name -> (value, source); the file's values are labelled with its path."""
    values: dict[str, tuple[Any, str]] = dict(base or {})
    config_file = _config_file(cli, environ, values)
    if config_file is not None:
        from .config_file import load_config_file

        for name, value in load_config_file(config_file[0]).items():
            values[name] = (value, config_file[0])
        values["config"] = config_file
    for name, opt in OPTIONS.items():
        found = env_value(opt, environ)
        if found is not None:
            values[name] = (parse_value(opt, found[1], source=f"environment {found[0]}"), "env")
    for name, raw in cli.items():
        values[name] = (parse_value(OPTIONS[name], raw, source="command line"), "command line")
    return values


def _config_file(cli: Mapping[str, Any], environ: Mapping[str, str],
                 base: Mapping[str, tuple[Any, str]]) -> tuple[str, str] | None:
    """(path, where it was named) of the --config file: command line, then GRANIAN_CONFIG, then base."""
    opt = OPTIONS["config"]
    if cli.get("config") is not None:
        return parse_value(opt, cli["config"]), "command line"
    found = env_value(opt, environ)
    if found is not None and found[1]:
        return parse_value(opt, found[1], source=f"environment {found[0]}"), "env"
    if "config" in base and base["config"][0]:
        return base["config"]
    return None


def config_from_args(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    parser = build_parser()
    ns = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    values = collect_values(vars(ns), environ)
    config = Config(**{k: v for k, (v, _) in values.items()}).validate()
    config_sources = {k: src for k, (_, src) in values.items()}
    object.__setattr__(config, "_sources", config_sources)
    if config.serve_media and not config.media_path_mount:
        raise ConfigError("--serve-media serves Django's MEDIA_ROOT (python manage.py granian); elsewhere give "
                          "the directory with --media-path-mount DIR")
    if not config.app:
        parser.error("missing argument APP (module:attr, e.g. `django-granian --interface asgi app:app`)")
    return config


def main(argv: Sequence[str] | None = None) -> None:
    try:
        config = config_from_args(argv)
    except ConfigError as exc:
        sys.stderr.write(f"{FATAL_PREFIX}{exc}\n")
        raise SystemExit(2) from None
    from .runner import run

    raise SystemExit(run(config))


if __name__ == "__main__":  # pragma: no cover
    main()
