"""Run Django's own cache tests (``BaseCacheTests``, used for every built-in backend) against MemDBCache.

``python -m tests.django_suite.cache`` reuses the sdist that runner.py fetches
into ``.django-suite/``, writes a test app there whose test case mixes
Django's ``BaseCacheTests`` into a MemDBCache case, and runs it with Django's
``runtests.py``. All 54 apply; a test that ever stops applying goes in
NOT_APPLICABLE with the reason, and is skipped by name.
"""

from __future__ import annotations

import os
import subprocess
import sys

import django
from django.apps import apps
from django.conf import settings
from django.test.runner import DiscoverRunner

from tests.django_suite.runner import REPO, fetch_tests, install_requirements

APP = "memdb_cache_suite"

NOT_APPLICABLE: dict[str, str] = {}

SETTINGS = '''\
"""Written by tests/django_suite/cache.py: Django's test settings with django-memdb and its cache."""

from test_sqlite import *  # noqa: F401,F403

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    "django_memdb": {"ENGINE": "django_memdb.backend", "NAME": "file:django_memdb?mode=memory&cache=shared"},
}
DATABASE_ROUTERS = ["django_memdb.dbrouter.MemDB"]
TEST_RUNNER = "tests.django_suite.cache.Runner"
'''

TESTS = '''\
"""Written by tests/django_suite/cache.py: Django's BaseCacheTests on MemDBCache."""

import unittest

from cache.tests import BaseCacheTests, caches_setting_for_tests
from django.test import TestCase, override_settings

NOT_APPLICABLE = {not_applicable!r}


# Caches that share a LOCATION share its entries and so its bound (MemDBCache's README): the
# caches with a bound of their own get a LOCATION of their own; the others share entries as
# the versioning tests expect.
CACHES = {{
    alias: {{**setting, "LOCATION": alias}} if alias in ("cull", "zero_cull") else setting
    for alias, setting in caches_setting_for_tests(BACKEND="django_memdb.cache.MemDBCache").items()
}}


@override_settings(CACHES=CACHES)
class MemDBCacheTests(BaseCacheTests, TestCase):
    databases = {{"default", "django_memdb"}}


for _name, _reason in NOT_APPLICABLE.items():
    setattr(MemDBCacheTests, _name, unittest.skip(_reason)(getattr(MemDBCacheTests, _name)))
'''


class Runner(DiscoverRunner):
    """runtests.py replaces INSTALLED_APPS: add django-memdb and its cache app as a project has them."""

    def setup_test_environment(self, **kwargs: object) -> None:
        # Django's "cache" test app holds the models its tests import.
        for app in ("cache", "django_memdb", "django_memdb.cache"):
            if app not in settings.INSTALLED_APPS:
                settings.INSTALLED_APPS.append(app)
        apps.set_installed_apps(settings.INSTALLED_APPS)
        super().setup_test_environment(**kwargs)

    def teardown_test_environment(self, **kwargs: object) -> None:
        super().teardown_test_environment(**kwargs)
        apps.unset_installed_apps()


def main() -> int:
    tests = fetch_tests(django.get_version())
    extra_path = install_requirements()
    (tests / "memdb_settings_cache.py").write_text(SETTINGS)
    app = tests / APP
    app.mkdir(exist_ok=True)
    (app / "__init__.py").write_text("")
    (app / "tests.py").write_text(TESTS.format(not_applicable=NOT_APPLICABLE))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(extra_path), str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "runtests.py", "--settings=memdb_settings_cache", "--parallel=1", "--noinput",
               "--verbosity=1", APP]
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=tests, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
