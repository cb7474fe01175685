"""Selects the default database; without its server the run skips, unless CI=true."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.db import connections

from django_memdb import modes, server_lease
from django_memdb.conf import conf
from tests import databases
from tests.processes import migrated_template, scratch  # noqa: F401 - fixtures of the process tests


def _server_problem() -> str | None:
    settings = databases.default_database()
    kind = databases.kind()
    try:
        if kind == "postgresql":
            import psycopg

            psycopg.connect(
                host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                dbname="postgres", connect_timeout=3,
            ).close()
        elif kind == "mariadb":
            import MySQLdb

            MySQLdb.connect(
                host=settings["HOST"], port=int(settings["PORT"]), user=settings["USER"],
                password=settings["PASSWORD"], connect_timeout=3,
            ).close()
    except Exception as exc:  # the driver missing counts as the server missing
        return f"{kind} server not reachable ({exc!r})"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config._memdb_problem = _server_problem()  # type: ignore[attr-defined]
    if config._memdb_problem and os.environ.get("CI", "").lower() == "true":  # type: ignore[attr-defined]
        raise pytest.UsageError(f"CI=true and the default database is unusable: {config._memdb_problem}")  # type: ignore[attr-defined]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if databases.kind() == "sqlite":
        # Cluster mode puts the tables on a server, and an outage needs a server to refuse
        # connections: their tests run in the server passes.
        def server_only(item: pytest.Item) -> bool:
            return any(item.get_closest_marker(name) for name in ("cluster", "outage"))

        deselected = [item for item in items if server_only(item)]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not server_only(item)]
    def other_database(item: pytest.Item) -> bool:
        marker = item.get_closest_marker("database")
        return marker is not None and databases.kind() not in marker.args

    # A test of one server's behaviour runs in that server's pass only.
    elsewhere = [item for item in items if other_database(item)]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if not other_database(item)]
    problem = config._memdb_problem  # type: ignore[attr-defined]
    if problem:
        skip = pytest.mark.skip(reason=f"MEMDB_TEST_DATABASE={databases.kind()}: {problem}")
        for item in items:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    header = f"django-memdb default database: {databases.kind()}"
    if databases.kind() == "sqlite":
        header += " (cluster-mode and outage tests need MEMDB_TEST_DATABASE=postgresql or mariadb)"
    return header


@pytest.fixture(scope="session", autouse=True)
def _server_lock_released(django_db_setup: None) -> Iterator[None]:
    """The storage session that holds the server's lock, closed before the test database is dropped."""
    yield
    server_lease.release_all()


@pytest.fixture(autouse=True)
def _claims_forgotten() -> Iterator[None]:
    """A transactional test empties storage afterwards, behind the writer of this process:
    its next write claims again, as a restarted writer would (see README, the server's lock)."""
    yield
    server_lease.forget_claims()
    database = modes.current().started_database()
    if database is not None and server_lease.applies(database, connections[conf.MEMDB_SPOOL_DATABASE]):
        database.tables.clear()  # which tables have a snapshot: written again at their next write
