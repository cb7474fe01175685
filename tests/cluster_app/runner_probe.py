"""Tests for Django's own test runner (``manage.py test tests.cluster_app.runner_probe``), not pytest's."""

from django.db import connections
from django.test import TestCase

from tests.cluster_app.models import Entry


class RunnerProbeTest(TestCase):
    databases = {"default", "django_memdb"}

    def check_isolated(self, text: str) -> None:
        Entry.objects.create(text=text)
        # The alias follows the test database, and each test's rows are rolled
        # back, but on MariaDB: MEMORY tables ignore rollbacks.
        connection = connections["django_memdb"]
        assert connection.settings_dict["NAME"].startswith("test_")
        texts = list(Entry.objects.values_list("text", flat=True))
        if connection.vendor == "mysql":
            Entry.objects.all().delete()
            assert text in texts
        else:
            assert texts == [text]

    def test_one(self) -> None:
        self.check_isolated("one")

    def test_two(self) -> None:
        self.check_isolated("two")
