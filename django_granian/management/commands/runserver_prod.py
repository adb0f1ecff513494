"""``manage.py runserver_prod``: an alias of ``manage.py granian``."""

from django_granian.django.management.commands.runserver_prod import Command

__all__ = ["Command"]
