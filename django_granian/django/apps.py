"""The ``django_granian`` Django app: add ``"django_granian"`` to INSTALLED_APPS."""

from __future__ import annotations

from django.apps import AppConfig


class DjangoGranianConfig(AppConfig):
    name = "django_granian"
    label = "django_granian"
    verbose_name = "django-granian"
    default = True

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the system checks
