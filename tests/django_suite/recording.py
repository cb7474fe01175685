"""Test runner loaded by Django's runtests.py: installs django-memdb and records every test's outcome.

runtests.py replaces INSTALLED_APPS with its own list, so the app is added here,
before any database is set up, as a project would have it installed. The
outcomes are written as JSON to the file named by ``OUTCOMES_ENV``, for
runner.py to compare the two runs test by test.
"""

from __future__ import annotations

import json
import os
import unittest
from typing import Any

from django.apps import apps
from django.conf import settings
from django.test.runner import DiscoverRunner

OUTCOMES_ENV = "MEMDB_DJANGO_SUITE_OUTCOMES"
APP = "django_memdb"

# Worst wins: a test with one failing subtest failed.
RANK = {"success": 0, "skipped": 0, "expected_failure": 0, "unexpected_success": 1, "failure": 2, "error": 3}


def test_id(test: Any) -> str:
    """The test's own id, also for a subtest (its parent) and for a class-level error holder."""
    parent = getattr(test, "test_case", None)
    return str((parent or test).id())


class RecordingResult(unittest.TextTestResult):
    outcomes: dict[str, str] = {}

    def _record(self, test: Any, outcome: str) -> None:
        key = test_id(test)
        previous = self.outcomes.get(key)
        if previous is None or RANK[outcome] > RANK[previous]:
            self.outcomes[key] = outcome

    def addSuccess(self, test: Any) -> None:
        super().addSuccess(test)
        self._record(test, "success")

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._record(test, "failure")

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._record(test, "error")

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._record(test, "skipped")

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record(test, "expected_failure")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected_success")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(test, "failure" if failed else "error")


class RecordingRunner(DiscoverRunner):
    def setup_test_environment(self, **kwargs: Any) -> None:
        if APP not in settings.INSTALLED_APPS:
            settings.INSTALLED_APPS.append(APP)
        # Undone in teardown_test_environment.
        apps.set_installed_apps(settings.INSTALLED_APPS)
        super().setup_test_environment(**kwargs)

    def teardown_test_environment(self, **kwargs: Any) -> None:
        super().teardown_test_environment(**kwargs)
        apps.unset_installed_apps()

    def get_resultclass(self) -> Any:
        return RecordingResult

    def run_suite(self, suite: Any, **kwargs: Any) -> Any:
        RecordingResult.outcomes = {}
        try:
            return super().run_suite(suite, **kwargs)
        finally:
            with open(os.environ[OUTCOMES_ENV], "w") as file:
                json.dump(RecordingResult.outcomes, file, indent=0, sort_keys=True)
