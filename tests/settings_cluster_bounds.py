"""Cluster mode with a bounded persistent model only (tests/test_cluster_bounds.py)."""

import django_integrator

from tests import databases
from tests.settings_base import *  # noqa: F401,F403
from tests.settings_base import INSTALLED_APPS

# As in settings_cluster: apps whose tables fit the server's in-memory tables.
_LEFT_OUT = ("tests", "tests.expiry_app") + (("django_memdb.cache",) if databases.kind() == "mariadb" else ())
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in _LEFT_OUT] + ["tests.cluster_bounds_app"]
MEMDB_MODE = "cluster"

django_integrator.add_application("django_memdb")
