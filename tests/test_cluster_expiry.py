"""Expiry in cluster mode, with real processes sharing the tables on the server.

Run in the PostgreSQL and MariaDB passes. Rows expire a second or two after
they are written; the tests wait for the real time (with generous deadlines).
"""

from __future__ import annotations

import datetime
import signal
import time
from collections.abc import Callable

import pytest
from django.utils import timezone

from tests.processes import KILLED, Scratch
from tests.servers import Worker

pytestmark = [pytest.mark.processes, pytest.mark.cluster]

SETTINGS = "tests.settings_cluster_expiry"
PASS = {"MEMDB_TEST_WORKER_MODEL": "cluster_expiry_app.Pass"}
# No purger thread to speak of: what is purged, a read or a write purged.
NO_ACTIVE_PURGE = {**PASS, "MEMDB_TEST_EXPIRY_INTERVAL": "3600"}
ACTIVE_PURGE = {**PASS, "MEMDB_TEST_EXPIRY_INTERVAL": "0.2"}
TABLES = ("cluster_expiry_app_pass", "django_memdb_changes", "django_memdb_cluster")


def _expiring(text: str, at: datetime.datetime) -> str:
    return f'create {{"text": "{text}", "expires_at": "{at.isoformat()}"}}'


def _in(seconds: float) -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=seconds)


def _sleep_past(moment: datetime.datetime) -> None:
    while timezone.now() <= moment:
        time.sleep(0.05)


def _until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the (generous) deadline"
        time.sleep(0.1)


def _kill(*workers: Worker) -> None:
    for worker in workers:
        worker.child.send(signal.SIGKILL)
        assert worker.child.wait().returncode == KILLED


def _quoted(database: Scratch, table: str) -> str:
    return f'"{table}"' if database.kind == "postgresql" else f"`{table}`"


def _on_the_server(database: Scratch) -> int:
    """The rows of the table on the server, read without any process's router: nothing is purged."""
    connection = database._connect()
    try:
        cursor = connection.cursor()
        cursor.execute(f"SELECT count(*) FROM {_quoted(database, TABLES[0])}")
        count = int(cursor.fetchone()[0])
        cursor.close()
        return count
    finally:
        connection.close()


def _lose_the_tables(database: Scratch) -> None:
    """What a server restart does to the in-memory tables: every process must restore from storage."""
    connection = database._connect()
    try:
        cursor = connection.cursor()
        for table in TABLES:
            cursor.execute(f"TRUNCATE TABLE {_quoted(database, table)}")
        cursor.close()
    finally:
        connection.close()


def test_an_expired_row_is_never_read_by_any_process(scratch: Scratch) -> None:
    writer = Worker(scratch, "writer", SETTINGS, **NO_ACTIVE_PURGE)
    reader = Worker(scratch, "reader", SETTINGS, **NO_ACTIVE_PURGE)
    assert writer.ask("count") == 0 and reader.ask("count") == 0  # both opened: no start-up below
    writer.ask('create {"text": "stays"}')
    at = _in(5)
    writer.ask(_expiring("expires", at))  # the last write: nothing purges it before it expires
    assert sorted(reader.ask("texts")) == ["expires", "stays"]  # one table on the server for both
    _sleep_past(at)
    assert _on_the_server(scratch) == 2  # nobody purged yet: no window for the next read
    assert reader.ask("texts") == ["stays"]
    assert _on_the_server(scratch) == 1  # deleted on the server, not hidden from one process


def test_some_process_purges_in_the_background_and_a_restart_of_all_keeps_them_gone(scratch: Scratch) -> None:
    writer = Worker(scratch, "writer", SETTINGS, **NO_ACTIVE_PURGE)
    purger = Worker(scratch, "purger", SETTINGS, **ACTIVE_PURGE)
    assert purger.ask("count") == 0  # its database is open: its purger thread runs
    writer.ask('create {"text": "stays"}')
    at = _in(1.5)
    for number in range(3):
        writer.ask(_expiring(f"expires {number}", at))  # all at once: no write purges another
    # Nobody reads through the ORM: only the purger thread of the second process deletes them.
    _until(lambda: _on_the_server(scratch) == 1)
    # Its thread may be between the commit on the server and the journal: stored before the kill
    # (a server that loses its tables at that moment loses the change records with them).
    purger.ask("spool")

    _kill(writer, purger)
    _lose_the_tables(scratch)
    restarted = Worker(scratch, "restarted", SETTINGS, **NO_ACTIVE_PURGE)
    restarted.ask("spool")  # opens the database (a restore from storage) and uses no model: nothing purged
    assert _on_the_server(scratch) == 1  # the purge was journaled: the rows were not restored
    assert restarted.ask("texts") == ["stays"]


def test_rows_that_expired_while_every_process_was_down_are_gone_before_the_first_read(scratch: Scratch) -> None:
    first = Worker(scratch, "first", SETTINGS, **NO_ACTIVE_PURGE)
    first.ask('create {"text": "stays"}')
    at = _in(1)
    first.ask(_expiring("expires while down", at))  # the last write: nothing purges it before the kill
    _kill(first)
    _lose_the_tables(scratch)
    _sleep_past(at)

    restarted = Worker(scratch, "restarted", SETTINGS, **NO_ACTIVE_PURGE)
    restarted.ask("spool")  # restores, and purges nothing: no model was used
    assert _on_the_server(scratch) == 2
    assert restarted.ask("texts") == ["stays"]  # its first read
    _kill(restarted)
    _lose_the_tables(scratch)
    again = Worker(scratch, "again", SETTINGS, **NO_ACTIVE_PURGE)
    again.ask("spool")
    assert _on_the_server(scratch) == 1  # that purge was journaled too
