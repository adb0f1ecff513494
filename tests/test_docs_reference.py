"""docs/reference.md is generated from the option declarations; the how-to guides only use real flags.

If the first test fails, regenerate the reference with:

    .venv/bin/python scripts/gen_reference.py
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from django_granian.config import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GEN = ROOT / "scripts" / "gen_reference.py"


def _load_gen():
    spec = importlib.util.spec_from_file_location("gen_reference", GEN)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_is_up_to_date() -> None:
    fresh = _load_gen().render()
    committed = (DOCS / "reference.md").read_text(encoding="utf-8") if (DOCS / "reference.md").exists() else ""
    assert committed == fresh, (
        "docs/reference.md differs from the option declarations in django_granian/config.py; "
        "regenerate it with: .venv/bin/python scripts/gen_reference.py"
    )


def test_reference_lists_every_option_with_env_and_default() -> None:
    text = _load_gen().render()
    for name, opt in OPTIONS.items():
        if name == "app":
            assert "`GRANIAN_APP`" in text
            continue
        row = next((line for line in text.splitlines() if line.startswith(f"| `{opt.flag}`")), None)
        assert row is not None, f"{opt.flag} missing from the reference"
        assert f"`{opt.env}`" in row and f"`{name}`" in row
        assert ("extension" in row) == (not opt.granian)


def test_check_mode_detects_drift(tmp_path: Path) -> None:
    gen = _load_gen()
    gen.TARGET = tmp_path / "reference.md"
    gen.TARGET.write_text("stale\n")
    gen.ROOT = tmp_path
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0


def test_script_runs_standalone() -> None:
    result = subprocess.run([sys.executable, str(GEN), "--check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


# --- flags used in the guides ---------------------------------------------------------------------

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]")
OUR_PROGRAMS = {"django-granian", "django_granian", "manage.py granian", "manage.py runserver_prod"}
INLINE_CODE = re.compile(r"`([^`]+)`")
PEER_TOOLS = ("granian", "uvicorn", "gunicorn", "daphne")
# Commands of other tools whose own flags may appear in code blocks (their lines are not ours to check).
FOREIGN_COMMANDS = {"pip", "pip3", "docker", "kubectl", "curl", "openssl", "git", "chromium", "django-admin",
                    "h2load", "wrk", "mkcert", "certbot", "helm", "sudo", "apt-get", "make", "pytest", "websocat",
                    "hypercorn", "nginx", "python", "python3", "gtlsclient", "docker-compose"}


def our_flags() -> set[str]:
    flags = {"--help", "--version"}
    for opt in OPTIONS.values():
        for flag in opt.flags:
            flags.add(flag)
            if opt.kind == "bool" and not opt.flag_only:
                flags.add("--no-" + flag[2:])
    try:  # the Django command may add a few flags of its own (e.g. --collectstatic)
        from django_granian.django.management.commands.granian import Command  # type: ignore

        parser = Command().create_parser("manage.py", "granian")
        flags |= {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
    except Exception:  # not written yet, or needs settings: the core options are what matters
        pass
    return flags


def peer_flags(tool: str) -> set[str] | None:
    """The real flags of an installed peer server (None when it is not installed)."""
    try:
        if tool == "granian":
            from granian.cli import cli

            return {o for p in cli.params for o in (*p.opts, *p.secondary_opts)}
        if tool == "uvicorn":
            from uvicorn.main import main

            return {o for p in main.params for o in (*p.opts, *p.secondary_opts)}
        if tool == "gunicorn":
            from gunicorn.config import KNOWN_SETTINGS

            return {c for s in KNOWN_SETTINGS for c in (s.cli or [])} | {"--help", "--version"}
        if tool == "daphne":
            from daphne.cli import CommandLineInterface

            return {o for a in CommandLineInterface().parser._actions for o in a.option_strings}
    except ImportError:
        return None
    return None


def guide_files() -> list[Path]:
    files = sorted((DOCS / "howto").glob("*.md"))
    files += [p for p in (DOCS / "tutorial.md", DOCS / "index.md") if p.exists()]
    return files


def _command_of(line: str) -> str | None:
    """The program a shell line runs (skipping `$`, VAR=value prefixes, `exec`, `uv run`)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        words = line.split()
    while words and (words[0] in ("$", "exec", "&&", "RUN", "CMD") or re.match(r"^[A-Z_][A-Z0-9_]*=", words[0])):
        words.pop(0)
    if not words:
        return None
    prog = Path(words[0]).name
    if prog in ("python", "python3") and len(words) > 2 and words[1] == "-m":
        return words[2].split(".")[0]
    if prog in ("python", "python3") and len(words) > 2 and words[1].endswith("manage.py"):
        return f"manage.py {words[2]}"
    return prog


def _foreign_flags(prog: str | None, flags: list[str], where: str) -> list[str] | None:
    """Problems with a foreign command's flags, or None when ``prog`` is not a foreign command."""
    if prog in PEER_TOOLS:
        known = peer_flags(prog)
        return [] if known is None else [f"{where}: {f} is not a {prog} flag" for f in flags if f not in known]
    if prog in FOREIGN_COMMANDS or (prog or "").startswith("manage.py") and prog not in OUR_PROGRAMS:
        return []
    return None


def find_flag_problems(path: Path, text: str, ours: set[str]) -> list[str]:
    problems = []
    in_code = False
    continued: str | None = None  # the program of a shell line continued with a backslash
    mapping_tool: str | None = None
    mapping_flags: set[str] | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        where = f"{path.relative_to(ROOT)}:{lineno}"
        marker = re.match(r"\s*<!--\s*flag-map:\s*(\w+)\s*-->", line)
        if marker:
            mapping_tool = marker.group(1)
            mapping_flags = peer_flags(mapping_tool)
            continue
        if re.match(r"\s*<!--\s*/flag-map\s*-->", line):
            mapping_tool = mapping_flags = None
            continue
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continued = None
            continue
        flags = FLAG.findall(line)
        if not flags:
            continued = None
            continue
        if mapping_tool and line.lstrip().startswith("|"):
            cells = line.strip().strip("|").split("|")
            theirs, rest = FLAG.findall(cells[0]), FLAG.findall("|".join(cells[1:]))
            if mapping_flags is not None:
                problems += [f"{where}: {f} is not a {mapping_tool} flag" for f in theirs if f not in mapping_flags]
            problems += [f"{where}: {f} is not a django-granian option" for f in rest if f not in ours]
            continue
        if in_code:
            prog = continued if continued is not None else _command_of(line)
            continued = prog if line.rstrip().endswith("\\") else None
            foreign = _foreign_flags(prog, flags, where)
            if foreign is not None:
                problems += foreign
                continue
        else:
            # inline code that runs another program (`python manage.py check --deploy`) is not ours
            for span in INLINE_CODE.findall(line):
                span_flags = FLAG.findall(span)
                foreign = _foreign_flags(_command_of(span), span_flags, where) if span_flags else None
                if foreign is not None:
                    problems += foreign
                    for flag in span_flags:
                        flags.remove(flag)
        problems += [f"{where}: {f} is not a django-granian option" for f in flags if f not in ours]
    return problems


def test_guides_only_use_existing_flags() -> None:
    files = guide_files()
    if not files:
        pytest.skip("no how-to guides yet")
    ours = our_flags()
    problems: list[str] = []
    for path in files:
        problems += find_flag_problems(path, path.read_text(encoding="utf-8"), ours)
    assert not problems, "unknown flags in the docs:\n" + "\n".join(problems)


def test_flag_checker_catches_mistakes() -> None:
    ours = our_flags()
    doc = "\n".join([
        "Run `django-granian --workerz 4 app:app`.",
        "```sh",
        "python manage.py granian --graceful-timout 30",
        "python manage.py collectstatic --noinput",
        "uvicorn --reload-dirz src app:app",
        "kubectl create secret generic django-granian --from-literal=x=1",
        "django-granian --interface asgi \\",
        "    --graceful-timeoutt 3 app:app",
        "```",
        "Run `python manage.py check --deploy` and `gunicorn --max-requestx 3`; then `--graceful-timeout 3`.",
        "<!-- flag-map: gunicorn -->",
        "| gunicorn | django-granian |",
        "| `--max-requests N` | `--workers-max-request N` |",
        "| `--max-requestz N` | `--workers-max-requests N` |",
        "<!-- /flag-map -->",
        "Use `--workers 4` and `--no-ws`.",
    ])
    problems = "\n".join(find_flag_problems(DOCS / "howto" / "x.md", doc, ours))
    assert "--workerz" in problems
    assert "--graceful-timout" in problems
    assert "--noinput" not in problems
    assert "--workers-max-request " in problems + " "
    assert ("--reload-dirz" in problems) == (peer_flags("uvicorn") is not None)
    assert ("--max-requestz" in problems) == (peer_flags("gunicorn") is not None)
    assert "--workers 4" not in problems and "--no-ws" not in problems
    assert "--from-literal" not in problems and "--deploy" not in problems
    assert "--graceful-timeoutt" in problems and "--graceful-timeout " not in problems + " "
    assert ("--max-requestx" in problems) == (peer_flags("gunicorn") is not None)
