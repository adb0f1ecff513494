"""``manage.py granian [OPTIONS] [[HOST:]PORT]``: serve this project in production.

Every flag of ``django-granian`` is accepted with the same name. Option values come from (lowest
first) Django settings and the machine, ``settings.GRANIAN``, ``GRANIAN_*`` environment variables
and the command line; the startup banner shows where each non-default value came from.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....cli import add_option_arguments, usage_error_text
from ....config import OPTIONS, ConfigError
from ....logs import FATAL_PREFIX

logger = logging.getLogger("django_granian")


class Error(CommandError):
    """Django prints a CommandError as ``<class name>: <message>`` (exit code 1): named so, it prints
    the ``Error: `` prefix every other django-granian error has."""


def parse_addrport(text: str) -> dict[str, str]:
    """runserver-style ``[HOST:]PORT`` (``[::1]:8000`` for IPv6)."""
    if text.isdigit():
        return {"port": text}
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise Error(f"{text!r} is not a port number or HOST:PORT pair")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return {"host": host, "port": port}


class Command(BaseCommand):
    help = ("Serve this Django project with django-granian: HTTP/1.1, HTTP/2, WebSockets and static files, "
            "sync views on the fast path. Takes every django-granian flag; defaults come from settings, "
            "settings.GRANIAN and GRANIAN_* environment variables.")
    requires_system_checks = "__all__"

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault("usage", "%(prog)s [OPTIONS] [[HOST:]PORT]")
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        django_error = parser.error

        def error(message: str) -> Any:  # the command line: one line and exit code 2, like django-granian
            if not parser.called_from_command_line:
                return django_error(message)  # call_command(): Django raises CommandError
            parser.exit(2, f"{FATAL_PREFIX}{usage_error_text(parser, message)}\n")

        parser.error = error  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addrport", nargs="?", metavar="[HOST:]PORT",
                            help="Optional address like runserver's (same as --host/--port).")
        parser.add_argument("--collectstatic", action="store_true",
                            help="Run `collectstatic --noinput` before serving.")
        parser.add_argument("--print-config", action="store_true",
                            help="Print the resolved options with their sources (JSON) and exit.")
        add_option_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        from ....logs import setup_logging
        from ...conf import build_config, describe_sources

        cli = {name: options[name] for name in OPTIONS if name in options and name not in ("app", "factory")}
        if options.get("addrport"):
            cli.update(parse_addrport(options["addrport"]))
        if options.get("collectstatic"):
            call_command("collectstatic", interactive=False, verbosity=max(0, options.get("verbosity", 1) - 1))
        try:
            config, warnings = build_config(cli, os.environ)
        except ConfigError as exc:
            raise Error(str(exc)) from None
        if options.get("print_config"):
            report = {"app": config.app, "options": {flag: {"value": value, "source": source}
                                                     for flag, value, source in describe_sources(config)},
                      "warnings": warnings}
            self.stdout.write(json.dumps(report, indent=2, default=str))
            return
        setup_logging(config)
        for message in warnings:
            logger.warning("%s", message)
        self._export_paths()
        from ....workers import needs_supervisor

        if needs_supervisor(config):
            # the supervisor must not hold the project's modules, or forked workers would keep them
            # across --reload and SIGHUP: it continues in a fresh interpreter (same PID)
            from ...supervise import exec_supervisor

            exec_supervisor(config)
        from ....runner import run

        code = run(config)
        if code:
            sys.exit(code)

    @staticmethod
    def _export_paths() -> None:
        """Make worker processes (however they are started) find the project like this one does."""
        paths = [p for p in sys.path[:3] if p and os.path.isdir(p)]
        current = os.environ.get("PYTHONPATH", "")
        extra = [p for p in paths if p not in current.split(os.pathsep)]
        if extra:
            os.environ["PYTHONPATH"] = os.pathsep.join([*extra, *([current] if current else [])])
