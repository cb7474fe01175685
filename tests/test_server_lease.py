"""The lease a PostgreSQL or MariaDB server keeps (an advisory lock of the writer's
storage session), with real processes: refused while the writer lives, free once
the server ended its session, stale loads refused, a dropped session taken again."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from django_memdb.models import SpoolLease
from tests.processes import KILLED, Scratch, _admin_connection, _execute
from tests.servers import Worker

pytestmark = [pytest.mark.processes, pytest.mark.database("postgresql", "mariadb")]


def _texts(database: Scratch) -> list[str]:
    return [row["text"] for row in database.dump()["tests.Persistent"]]


def _on_scratch(database: Scratch, sql: str) -> None:
    connection = database._connect()
    try:
        _execute(connection, sql)
        connection.commit()
    finally:
        connection.close()


def _lease_row(database: Scratch, assignments: str) -> None:
    """Make the lease row say what a row lease alone would misread."""
    _on_scratch(database, f"UPDATE {SpoolLease._meta.db_table} SET {assignments}")


def _drop_sessions(database: Scratch) -> None:
    """The server ends every session on the scratch database (the owner's), as a restart would."""
    connection = _admin_connection(database.kind)
    try:
        cursor = connection.cursor()
        if database.kind == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [database.name],
            )
            assert cursor.fetchall()
        else:
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                [database.name],
            )
            threads = [thread for (thread,) in cursor.fetchall()]
            assert threads
            for thread in threads:
                _execute(connection, f"KILL CONNECTION {int(thread)}")
        cursor.close()
    finally:
        connection.close()


def test_a_second_writer_is_refused_while_the_first_lives_and_writes_once_it_was_killed(scratch: Scratch) -> None:
    owner = Worker(scratch, "owner")
    owner.ask("write a1")
    owner.ask("write a2")
    # A row lease would have run out: the server's lock still says the owner lives.
    _lease_row(scratch, "expires = '2000-01-01 00:00:00'")
    second = Worker(scratch, "second")
    refusal = second.ask("write b1", "error")
    assert "written by another process" in refusal and f"pid {owner.pid}" in refusal, refusal
    assert second.ask("texts") == ["a1", "a2"]  # nothing of b1 in memory either
    second.child.finish().check()
    owner.ask("write a3")

    assert owner.child.send(signal.SIGKILL).returncode == KILLED
    # A row lease would still run, on another host: the server released the lock with the session.
    _lease_row(scratch, "expires = '2999-01-01 00:00:00', host = 'elsewhere'")
    third = Worker(scratch, "third")
    assert third.ask("texts") == ["a1", "a2", "a3"]
    third.ask("write c1")
    third.ask("write c2")
    assert third.child.send(signal.SIGKILL).returncode == KILLED
    assert _texts(scratch) == ["a1", "a2", "a3", "c1", "c2"]


def test_a_loader_that_loaded_before_the_owners_last_plain_appends_is_refused_at_takeover(
    scratch: Scratch,
) -> None:
    owner = Worker(scratch, "owner")
    owner.ask("write a1")
    owner.ask("write a2")
    early = Worker(scratch, "early")
    assert early.ask("texts") == ["a1", "a2"]  # its load bumps the generation
    owner.ask("write a3")  # a plain INSERT: the generation stays the early loader's
    assert owner.child.send(signal.SIGKILL).returncode == KILLED

    stale = early.ask("write b1", "error")  # told by the journal's highest id at its load
    assert "after this process loaded them" in stale, stale
    early.child.finish().check()
    late = Worker(scratch, "late")
    assert late.ask("texts") == ["a1", "a2", "a3"]
    late.ask("write c1")
    assert late.child.send(signal.SIGKILL).returncode == KILLED
    assert _texts(scratch) == ["a1", "a2", "a3", "c1"]


def test_a_loader_after_the_owners_last_append_takes_over_once_it_was_killed(scratch: Scratch) -> None:
    owner = Worker(scratch, "owner")
    owner.ask("write a1")
    owner.ask("write a2")
    loader = Worker(scratch, "loader")
    assert loader.ask("texts") == ["a1", "a2"]
    assert owner.child.send(signal.SIGKILL).returncode == KILLED
    loader.ask("write b1")
    assert loader.child.send(signal.SIGKILL).returncode == KILLED
    assert _texts(scratch) == ["a1", "a2", "b1"]


def test_a_storage_session_the_server_dropped_is_taken_again_and_nothing_is_lost(scratch: Scratch) -> None:
    owner = Worker(scratch, "owner")
    owner.ask("write a1")
    owner.ask("write a2")
    _drop_sessions(scratch)  # the lock goes with the session
    owner.ask("write a3")  # a new session takes the lock and claims again
    owner.ask("write a4")
    second = Worker(scratch, "second")
    refusal: Any = second.ask("write b1", "error")
    assert f"pid {owner.pid}" in refusal, refusal
    second.child.finish().check()
    _drop_sessions(scratch)
    owner.ask("write a5")
    assert owner.child.send(signal.SIGKILL).returncode == KILLED
    assert _texts(scratch) == ["a1", "a2", "a3", "a4", "a5"]
