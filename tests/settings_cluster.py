"""Cluster mode: the in-memory tables on the default database's server (PostgreSQL or MariaDB).

Its app's models fit every mode; the benchmark of modes sets MEMDB_TEST_APP_MODE.
"""

import os

import django_integrator

from tests import databases
from tests.settings_base import *  # noqa: F401,F403
from tests.settings_base import CACHES, INSTALLED_APPS

# MemDBCache's app on PostgreSQL only: its BLOB values do not fit MariaDB's MEMORY tables (check E012).
_LEFT_OUT = ("tests", "tests.expiry_app") + (("django_memdb.cache",) if databases.kind() == "mariadb" else ())
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in _LEFT_OUT] + ["tests.cluster_app"]
ROOT_URLCONF = "tests.cluster_app.urls"
MEMDB_MODE = os.environ.get("MEMDB_TEST_APP_MODE", "cluster")

# A cache small enough to watch its least recently used entries go.
CACHES = {
    **CACHES,
    "memdb_small": {
        "BACKEND": "django_memdb.cache.MemDBCache", "LOCATION": "small",
        "OPTIONS": {"MAX_ENTRIES": 9, "CULL_FREQUENCY": 3},
    },
}

django_integrator.add_application("django_memdb")
