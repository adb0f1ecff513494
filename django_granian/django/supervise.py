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

ENV = "DJANGO_GRANIAN_SUPERVISOR_CONFIG_FD"


def exec_supervisor(config: Config) -> NoReturn:
    """Replace this process with a fresh interpreter that supervises ``config``'s workers.

    The options go through an inherited pipe, not the environment: they may hold secrets (an
    ``ssl_keyfile_password`` from ``settings.GRANIAN``), and a process's initial environment stays
    readable in ``/proc/<pid>/environ`` for as long as it runs."""
    payload = {"options": {f.name: getattr(config, f.name) for f in dataclasses.fields(config)},
               "sources": getattr(config, "_sources", {})}
    data = json.dumps(payload).encode()
    if len(data) > 65536:  # more than a pipe holds before a reader exists: never for real options
        raise RuntimeError("resolved options too large to hand over")
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    os.set_inheritable(read_fd, True)
    env = dict(os.environ)
    env[ENV] = str(read_fd)
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if package_parent not in _site_dirs():  # a checkout found through sys.path (manage.py's, --pythonpath)
        current = env.get("PYTHONPATH", "")
        if package_parent not in current.split(os.pathsep):
            env["PYTHONPATH"] = os.pathsep.join([*([current] if current else []), package_parent])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *interpreter_options(sys.orig_argv), "-m", __name__], env)


_FLAGS = {"-b", "-bb", "-B", "-d", "-E", "-I", "-O", "-OO", "-P", "-q", "-R", "-s", "-S", "-u", "-v", "-vv"}


def interpreter_options(argv: list[str]) -> list[str]:
    """The interpreter options of ``argv`` (``sys.orig_argv``): ``python -u -X dev manage.py ...`` ->
    ``["-u", "-X", "dev"]``, so the new interpreter keeps unbuffered output, dev mode, warnings."""
    out: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("-X", "-W") and i + 1 < len(argv):
            out += argv[i:i + 2]
            i += 2
        elif arg.startswith(("-X", "-W")) and len(arg) > 2 or arg in _FLAGS:
            out.append(arg)
            i += 1
        else:  # the script, -m, -c or an option we do not know: the interpreter options end here
            break
    return out


def _site_dirs() -> list[str]:
    dirs = list(site.getsitepackages())
    user = site.getusersitepackages()
    if user:
        dirs.append(user)
    return [os.path.abspath(d) for d in dirs]


def main() -> int:
    fd = os.environ.pop(ENV, None)
    if fd is None or not fd.isdigit():
        print(f"{__name__} is started by `manage.py granian`, not by hand", file=sys.stderr)
        return 2
    with os.fdopen(int(fd), "rb") as pipe:
        payload = json.loads(pipe.read())
    config = Config(**payload["options"]).validate()
    object.__setattr__(config, "_sources", payload["sources"])
    from ..runner import run

    return run(config)


if __name__ == "__main__":
    sys.exit(main())
