"""Process entry: prepare the process (working dir, env files, logging), then serve or supervise."""

from __future__ import annotations

import os
import sys

from .config import Config, ConfigError
from .logs import check_access_format, fatal, setup_logging


def prepare_process(config: Config) -> None:
    """Apply --working-dir and --env-files (before the app is imported)."""
    if config.working_dir:
        os.chdir(config.working_dir)
        sys.path.insert(0, os.getcwd())
    elif os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for path in config.env_files:
        try:
            from dotenv import load_dotenv
        except ImportError:
            raise ConfigError("--env-files needs python-dotenv (pip install django-granian[dotenv])") from None
        if not os.path.isfile(path):
            raise ConfigError(f"--env-files: {path!r} does not exist")
        load_dotenv(path, override=False)


def run(config: Config) -> int:
    """Run the server described by ``config``; returns the process exit code."""
    setup_logging(config)
    try:
        check_access_format(config.access_log_fmt)
        prepare_process(config)
    except (ConfigError, ValueError) as exc:
        fatal(str(exc))
        return 2
    from .workers import needs_supervisor

    if needs_supervisor(config):
        from .workers.supervisor import Supervisor

        return int(Supervisor(config).run())
    from .serving import Server

    return Server(config).run()
