"""Django app entry point for ``INSTALLED_APPS = [..., "django_granian"]`` (the code is in ``django/``)."""

from .django.apps import DjangoGranianConfig

__all__ = ["DjangoGranianConfig"]
