"""Bounded tables in cluster mode: a trigger of the server's table evicts the oldest rows.

On PostgreSQL, with real processes writing to the one table at once; on
MariaDB, whose triggers cannot delete from their own table, check E016
refuses the model and says why.
"""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest

from tests.processes import KILLED, Scratch
from tests.servers import Worker

pytestmark = [pytest.mark.processes, pytest.mark.cluster]

SETTINGS = "tests.settings_cluster_bounds"
BOUND = 10  # Slot's memdb_max_rows (its module is not imported here: its app is not installed in this process)
SLOT = {"MEMDB_TEST_WORKER_MODEL": "cluster_bounds_app.Slot"}
TABLES = ("cluster_bounds_app_slot", "django_memdb_changes", "django_memdb_cluster")


def _server(database: Scratch, sql: str) -> list[tuple[object, ...]]:
    """Rows of a query on the server, without any process's router."""
    connection = database._connect()
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        rows = list(cursor.fetchall())
        cursor.close()
        return rows
    finally:
        connection.close()


def _texts_on_the_server(database: Scratch) -> list[str]:
    return [str(row[0]) for row in _server(database, f'SELECT text FROM "{TABLES[0]}" ORDER BY id')]


def _send(worker: Worker, command: str) -> None:
    assert worker.child.popen.stdin is not None
    worker.child.popen.stdin.write(command + "\n")
    worker.child.popen.stdin.flush()


def test_the_bound_holds_after_every_commit_of_processes_writing_at_once(scratch: Scratch) -> None:
    if scratch.kind != "postgresql":
        return _refused_on_mariadb(scratch)  # on MariaDB, that is the behaviour to test
    first = Worker(scratch, "first", SETTINGS, **SLOT)
    second = Worker(scratch, "second", SETTINGS, **SLOT)
    assert first.ask("count") == 0 and second.ask("count") == 0
    counts: list[int] = []
    done = threading.Event()

    def watch() -> None:  # what a third session sees while they write: committed rows only
        while not done.is_set():
            counts.append(int(_server(scratch, f'SELECT count(*) FROM "{TABLES[0]}"')[0][0]))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        _send(first, "writes 40 first")
        _send(second, "writes 40 second")
        first_keys = first.child.wait_for("ok", timeout=120)
        second_keys = second.child.wait_for("ok", timeout=120)
    finally:
        done.set()
        watcher.join()
    assert counts and max(counts) <= BOUND
    # The newest rows stay: the ten highest keys of the 80 written.
    newest = sorted([*first_keys, *second_keys])[-BOUND:]
    assert [int(row[0]) for row in _server(scratch, f'SELECT id FROM "{TABLES[0]}" ORDER BY id')] == newest

    # One INSERT of more rows than the bound: the newest of them stay.
    first.ask(f"bulk {BOUND + 5} bulk")
    assert _texts_on_the_server(scratch) == [f"bulk {i}" for i in range(5, BOUND + 5)]


def test_evictions_are_journaled_and_a_restart_of_every_process_restores_the_bound(scratch: Scratch) -> None:
    if scratch.kind != "postgresql":
        return _refused_on_mariadb(scratch)
    writer = Worker(scratch, "writer", SETTINGS, **SLOT)
    writer.ask("writes 25 row")
    kept = _texts_on_the_server(scratch)
    assert kept == [f"row {i}" for i in range(15, 25)]
    writer.child.send(signal.SIGKILL)
    assert writer.child.wait().returncode == KILLED
    # The server lost its in-memory tables (a restart): the next process restores from storage.
    connection = scratch._connect()
    try:
        cursor = connection.cursor()
        for table in TABLES:
            cursor.execute(f'TRUNCATE TABLE "{table}"')
        cursor.close()
    finally:
        connection.close()
    restarted = Worker(scratch, "restarted", SETTINGS, **SLOT)
    assert restarted.ask("texts") == kept
    restarted.ask("write one more")
    assert _texts_on_the_server(scratch) == [*kept[1:], "one more"]


def _refused_on_mariadb(database: Scratch) -> None:
    # The model checks only: the URL checks would import the test project's views and their models.
    child = database._spawn(["manage.py", "check", "--tag", "models"], database.env(SETTINGS), subprocess.DEVNULL)
    result = child.wait()
    assert result.returncode != 0
    assert "django_memdb.E016" in result.stderr
    assert "cluster mode keeps it on PostgreSQL only" in result.stderr
