#!/usr/bin/env python
"""Django's command-line utility for the django-granian test project."""

import os
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    root = str(here.parent)  # the repository root: makes `django_granian` importable from a checkout
    if root not in sys.path:
        sys.path.append(root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
