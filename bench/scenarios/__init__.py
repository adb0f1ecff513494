"""Scenario modules: every ``bench/scenarios/<name>.py`` is imported and calls ``bench.spec.register``."""

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
