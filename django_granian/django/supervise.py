"""``manage.py granian`` with a supervisor: the supervisor runs in a fresh interpreter.

By the time the management command runs, ``manage.py`` has imported the project: settings, every
app's models and, for the system checks, the URLconf with its views. Workers forked from that
process would inherit those modules, so ``--reload`` and SIGHUP would start new workers on the old
code. So when the options need a supervisor (``--workers N``, ``--reload``, ``--metrics``, ...), the
command replaces itself (``exec``: same PID, same signals, same terminal) with this module, handing
over the resolved options and where each came from. Like the ``django-granian`` CLI's supervisor, it
never imports Django or the project; every worker imports the project after the fork.

This module must not import Django.
"""

from __future__ import annotations

import dataclasses
import json
import os
import site
import sys
from typing import NoReturn

from ..config import Config

ENV = "DJANGO_GRANIAN_SUPERVISOR_CONFIG"


def exec_supervisor(config: Config) -> NoReturn:
    """Replace this process with a fresh interpreter that supervises ``config``'s workers."""
    payload = {"options": {f.name: getattr(config, f.name) for f in dataclasses.fields(config)},
               "sources": getattr(config, "_sources", {})}
    env = dict(os.environ)
    env[ENV] = json.dumps(payload)
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if package_parent not in _site_dirs():  # a checkout found through sys.path (manage.py's, --pythonpath)
        current = env.get("PYTHONPATH", "")
        if package_parent not in current.split(os.pathsep):
            env["PYTHONPATH"] = os.pathsep.join([*([current] if current else []), package_parent])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", __name__], env)


def _site_dirs() -> list[str]:
    dirs = list(site.getsitepackages())
    user = site.getusersitepackages()
    if user:
        dirs.append(user)
    return [os.path.abspath(d) for d in dirs]


def main() -> int:
    raw = os.environ.pop(ENV, None)
    if raw is None:
        print(f"{__name__} is started by `manage.py granian`, not by hand", file=sys.stderr)
        return 2
    payload = json.loads(raw)
    config = Config(**payload["options"]).validate()
    object.__setattr__(config, "_sources", payload["sources"])
    from ..runner import run

    return run(config)


if __name__ == "__main__":
    sys.exit(main())
