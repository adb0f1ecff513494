"""``manage.py runserver_prod``: the same command as ``manage.py granian``."""

from __future__ import annotations

from .granian import Command as GranianCommand


class Command(GranianCommand):
    help = "Alias of `manage.py granian`: " + GranianCommand.help
