"""Import an application from ``module:attr``, ``module:attr.sub`` or ``path/file.py:attr``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any


class AppLoadError(Exception):
    """The application could not be imported; the message says what to fix."""


def load_target(target: str, *, factory: bool = False) -> Any:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_part, _, attr_part = target.partition(":")
    attr_part = attr_part or "app"
    if not module_part:
        raise AppLoadError(f"invalid application target {target!r}: expected module:attr")
    if module_part.endswith(".py") or os.sep in module_part:
        path = os.path.abspath(module_part)
        if not os.path.isfile(path):
            raise AppLoadError(f"application file {module_part!r} does not exist")
        directory, filename = os.path.split(path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        name = filename[:-3] if filename.endswith(".py") else filename
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise AppLoadError(f"cannot import {module_part!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise AppLoadError(f"error while importing {module_part!r}: {exc!r}") from exc
    else:
        try:
            module = importlib.import_module(module_part)
        except ModuleNotFoundError as exc:
            if exc.name and (module_part == exc.name or module_part.startswith(exc.name + ".")):
                raise AppLoadError(f"could not import module {module_part!r} (is the working directory "
                                   f"right? use --working-dir)") from exc
            raise AppLoadError(f"error while importing {module_part!r}: {exc!r}") from exc
        except Exception as exc:
            raise AppLoadError(f"error while importing {module_part!r}: {exc!r}") from exc
    obj: Any = module
    for attr in attr_part.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AppLoadError(f"attribute {attr_part!r} not found in module {module_part!r}") from None
    if factory:
        try:
            obj = obj()
        except Exception as exc:
            raise AppLoadError(f"application factory {target!r} failed: {exc!r}") from exc
    if not callable(obj) and not hasattr(obj, "__rsgi__"):
        raise AppLoadError(f"{target!r} is not callable (got {type(obj).__name__}); is --factory needed?")
    return obj


def detect_interface(app: Any) -> str:
    """Guess the interface of an app: ``rsgi``, ``asgi`` or ``wsgi``."""
    if hasattr(app, "__rsgi__"):
        return "rsgi"
    call = app if inspect.isfunction(app) or inspect.ismethod(app) or not callable(app) else app.__call__
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app):
        return "asgi"
    try:
        params = [p for p in inspect.signature(call).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return "asgi"
    return "wsgi" if len(params) == 2 else "asgi"
