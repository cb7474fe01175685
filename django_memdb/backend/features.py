"""Features of the in-memory engine: Django's SQLite ones, probed without starting it."""

from __future__ import annotations

import sqlite3

from django.db.backends.sqlite3.features import DatabaseFeatures as SQLiteDatabaseFeatures
from django.utils.functional import cached_property


class DatabaseFeatures(SQLiteDatabaseFeatures):
    @cached_property
    def supports_json_field(self) -> bool:  # type: ignore[override]  # a cached_property in Django too
        # System checks ask this (Django 6.1+); a cursor on the alias would
        # start the in-memory database, and with it migrate and restore.
        probe = sqlite3.connect(":memory:")
        try:
            probe.execute("SELECT JSON('{\"a\": \"b\"}')")
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()
        return True
