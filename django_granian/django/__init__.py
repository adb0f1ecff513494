"""The Django integration: the only package (with its ``apps``/``management`` shims) that imports Django.

- ``apps``: the ``django_granian`` AppConfig (registers the system checks).
- ``conf``: Django settings + ``settings.GRANIAN`` + ``GRANIAN_*`` env + command line -> ``Config``.
- ``application``: the project's WSGI and ASGI applications, located from its settings.
- ``handler``: the fast path interface: HTTP through Django's WSGI handler in the worker's thread
  pool, WebSocket and lifespan through the project's ASGI application, in the same process.
- ``checks``: system checks tagged ``django_granian``.
- ``management.commands``: ``manage.py granian`` and its alias ``runserver_prod``.
"""
