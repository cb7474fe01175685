"""Cluster mode: the in-memory tables on the default database's server (PostgreSQL or MariaDB).

Its app's models fit every mode; the benchmark of modes sets MEMDB_TEST_APP_MODE.
"""

import os

import django_integrator

from tests.settings_base import *  # noqa: F401,F403
from tests.settings_base import INSTALLED_APPS

# Not MemDBCache's app: its BLOB values do not fit MariaDB's MEMORY tables (check E012).
INSTALLED_APPS = [
    app for app in INSTALLED_APPS if app not in ("tests", "tests.expiry_app", "django_memdb.cache")
] + ["tests.cluster_app"]
ROOT_URLCONF = "tests.cluster_app.urls"
MEMDB_MODE = os.environ.get("MEMDB_TEST_APP_MODE", "cluster")

django_integrator.add_application("django_memdb")
