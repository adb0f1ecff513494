"""``--config site.toml``: options from a TOML file, with the same names as ``settings.GRANIAN``.

The file is a flat table of option names (``workers = 4``, ``static_path_route = ["/static"]``,
dashes allowed: ``static-path-expires = 600``) with TOML values or the strings the command line takes
(``limit_request_body = "20MiB"``). It is read once, at start. Unknown keys are a start-up error with
a "did you mean" suggestion; so are sub-tables (``[http]``) and the ``config`` key itself.

Precedence, lowest first: defaults < (Django settings < ``settings.GRANIAN``) < the file <
``GRANIAN_*`` environment < command line (:func:`django_granian.cli.collect_values`).
"""

from __future__ import annotations

import sys
from typing import Any

from .config import OPTIONS, ConfigError, _suggest, parse_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PRECEDENCE = "defaults < {file} < GRANIAN_* environment < command line"
DJANGO_PRECEDENCE = "defaults < Django settings < settings.GRANIAN < {file} < GRANIAN_* environment < command line"


def option_name(key: str) -> str:
    return key.lstrip("-").replace("-", "_").lower()


def load_config_file(path: str) -> dict[str, Any]:
    """Option name -> value (parsed like the command line's); ConfigError names the file and the key."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"--config {path!r}: cannot read it ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path!r}: not valid TOML ({exc})") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = option_name(key)
        if name not in OPTIONS:
            raise ConfigError(f"unknown option {key!r} in {path}{_suggest(name)}")
        if name == "config":
            raise ConfigError(f"{path}: 'config' cannot be set inside a config file")
        if isinstance(value, dict):
            raise ConfigError(f"{path}: {key!r} is a table; options are top-level keys (`{name} = ...`)")
        values[name] = parse_value(OPTIONS[name], value, source=path)
    return values
