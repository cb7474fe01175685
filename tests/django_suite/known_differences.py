"""Tests of Django's suite that pass on stock SQLite and, by design, not on django_memdb.backend.

One entry per test id, with the reason. runner.py fails on any other difference,
and on an entry that no longer differs.
"""

from __future__ import annotations

SHARED_CONNECTION = (
    "one connection shared by all threads of a process: every thread's wrapper uses the same "
    "sqlite3 connection, so that all threads see the same in-memory tables"
)
PRIVATE_FEATURE_PROBE = (
    "supports_json_field is probed on a private ':memory:' connection, not through the alias: "
    "system checks ask for it, and a cursor on the alias would start the in-memory database "
    "(migrate, restore) during the checks"
)

KNOWN: dict[str, str] = {
    "backends.tests.ThreadTests.test_default_connection_thread_local": SHARED_CONNECTION,
    "backends.sqlite.test_features.FeaturesTests.test_supports_json_field_operational_error": PRIVATE_FEATURE_PROBE,
}
