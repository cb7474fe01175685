"""Settings shared by both ways of installing django-memdb in the test project."""

from __future__ import annotations

import os

from tests.databases import BASE_DIR as BASE_DIR  # a setting: the demo runs from it
from tests.databases import default_database

SECRET_KEY = "django-memdb-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "tests",
    "tests.fk_app",
    "tests.mixed_app",
    "tests.expiry_app",
    "django_memdb.cache",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"

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
            ]
        },
    }
]

DATABASES = {"default": default_database()}

DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

MEMDB_DURABILITY = os.environ.get("MEMDB_TEST_DURABILITY", "commit")
MEMDB_FLUSH_INTERVAL = float(os.environ.get("MEMDB_TEST_FLUSH_INTERVAL", "1.0"))
MEMDB_MODE = os.environ.get("MEMDB_TEST_MODE", "process")
if "MEMDB_TEST_EXPIRY_INTERVAL" in os.environ:
    MEMDB_EXPIRY_INTERVAL = float(os.environ["MEMDB_TEST_EXPIRY_INTERVAL"])
if "MEMDB_TEST_LEASE_SECONDS" in os.environ:
    MEMDB_LEASE_SECONDS = float(os.environ["MEMDB_TEST_LEASE_SECONDS"])
if "MEMDB_TEST_HOST_DIRECTORY" in os.environ:
    MEMDB_HOST_DIRECTORY = os.environ["MEMDB_TEST_HOST_DIRECTORY"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_memdb": {"handlers": ["console"], "level": os.environ.get("MEMDB_TEST_LOG_LEVEL", "WARNING")},
        # The traceback of a failed request, in the log of a server under test.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

STATIC_URL = "/static/"

# MemDBCache (django_memdb.cache); the default cache stays Django's.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "memdb": {"BACKEND": "django_memdb.cache.MemDBCache", "LOCATION": "tests", "OPTIONS": {"MAX_ENTRIES": 1000}},
    "memdb_persistent": {
        "BACKEND": "django_memdb.cache.MemDBCache", "LOCATION": "tests-persistent",
        "OPTIONS": {"MAX_ENTRIES": 1000, "PERSISTENT": True},
    },
}
SESSION_ENGINE = os.environ.get("MEMDB_TEST_SESSION_ENGINE", "django.contrib.sessions.backends.db")
SESSION_CACHE_ALIAS = "memdb"
