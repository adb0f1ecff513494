"""Settings of the django-granian test project (tests, benchmarks and `make run`).

A few values can be overridden with environment variables so tests can exercise the server's
settings mapping without editing this file:

- ``TESTPROJECT_DEBUG=1``                  DEBUG = True
- ``TESTPROJECT_SCRIPT_NAME=/prefix``      FORCE_SCRIPT_NAME
- ``TESTPROJECT_STATIC_ROOT=/path``        STATIC_ROOT (default: testproject/staticfiles)
- ``TESTPROJECT_DB=/path/db.sqlite3``      the sqlite database (default: testproject/db.sqlite3)
- ``TESTPROJECT_GRANIAN='{"json": 1}'``    settings.GRANIAN (a JSON object)
- ``TESTPROJECT_PROXY_SSL=1``              SECURE_PROXY_SSL_HEADER
- ``TESTPROJECT_MEDIA_ROOT=/path``         MEDIA_ROOT (default: testproject/media)
- ``TESTPROJECT_PRIVATE_ROOT=/path``       SENDFILE_ROOT, django-sendfile2's private files (default: testproject/private)
- ``TESTPROJECT_GZIP=1``                   Django's GZipMiddleware first (the compression benchmark's baseline)
"""

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "testproject-insecure-key-do-not-use-in-production")
DEBUG = os.environ.get("TESTPROJECT_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("TESTPROJECT_ALLOWED_HOSTS", "*").split()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_granian",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if os.environ.get("TESTPROJECT_GZIP") == "1":
    MIDDLEWARE.insert(0, "django.middleware.gzip.GZipMiddleware")

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "testproject.wsgi.application"
ASGI_APPLICATION = "testproject.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TESTPROJECT_DB") or BASE_DIR / "db.sqlite3",
    }
}

AUTH_PASSWORD_VALIDATORS: list[dict] = []

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("TESTPROJECT_STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # hashed names (served with immutable caching) + .gz/.br variants (served precompressed)
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# user uploads (served by `manage.py granian` with GRANIAN = {"serve_media": True}; git-ignored)
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("TESTPROJECT_MEDIA_ROOT") or BASE_DIR / "media")

# private files handed to the server with X-Accel-Redirect (django-sendfile2's nginx backend; the server
# takes SENDFILE_URL / SENDFILE_ROOT as its internal route, see docs/howto/replacing-nginx.md)
SENDFILE_BACKEND = "django_sendfile.backends.nginx"
SENDFILE_ROOT = Path(os.environ.get("TESTPROJECT_PRIVATE_ROOT") or BASE_DIR / "private")
SENDFILE_URL = "/protected"

FORCE_SCRIPT_NAME = os.environ.get("TESTPROJECT_SCRIPT_NAME") or None

if os.environ.get("TESTPROJECT_PROXY_SSL") == "1":
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-granian server options (same names as the CLI flags); see docs/django.md
GRANIAN: dict = json.loads(os.environ.get("TESTPROJECT_GRANIAN") or "{}")
