"""``manage.py granian``: see :mod:`django_granian.django.management.commands.granian`."""

from django_granian.django.management.commands.granian import Command

__all__ = ["Command"]
