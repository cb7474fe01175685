"""A storage database that drops the connections of a process without requests, then comes back.

The child processes connect as a role of their own, which the server is
told to refuse (PostgreSQL: ``CONNECTION LIMIT 0``; MariaDB: ``ACCOUNT
LOCK``) while its open connections are killed; a superuser connection
checks storage meanwhile. Nothing committed may be lost once the server
accepts the role again.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.processes import KILLED, TIMEOUT, Scratch, _admin_connection, _execute
from tests.servers import Worker

pytestmark = [pytest.mark.processes, pytest.mark.outage]

INTERVAL = {"MEMDB_TEST_DURABILITY": "interval", "MEMDB_TEST_FLUSH_INTERVAL": "0.2"}


class Outage:
    """A login role owning the scratch database, whose connections the server can refuse."""

    def __init__(self, database: Scratch) -> None:
        self.database = database
        self.kind = database.kind
        self.role = f"memdb_role_{uuid.uuid4().hex[:12]}"

    def _admin(self, *statements: str, database: str | None = None) -> list[Any]:
        if self.kind == "postgresql" and database is not None:
            import psycopg

            from tests.processes import _server_settings

            server = _server_settings()
            connection = psycopg.connect(
                host=server["HOST"], port=server["PORT"], user=server["USER"], dbname=database, autocommit=True,
            )
        else:
            connection = _admin_connection(self.kind)
        try:
            found: list[Any] = []
            for statement in statements:
                cursor = connection.cursor()
                cursor.execute(statement)
                if cursor.description is not None:
                    found += cursor.fetchall()
                cursor.close()
            return found
        finally:
            connection.close()

    def create(self) -> None:
        if self.kind == "postgresql":
            self._admin(f"CREATE ROLE {self.role} LOGIN", f"ALTER DATABASE {self.database.name} OWNER TO {self.role}")
            tables = self._admin(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database=self.database.name
            )
            self._admin(
                *(f'ALTER TABLE public."{table}" OWNER TO {self.role}' for (table,) in tables),
                database=self.database.name,
            )
        else:
            self._admin(
                f"CREATE USER '{self.role}'@'%'",
                f"GRANT ALL PRIVILEGES ON `{self.database.name}`.* TO '{self.role}'@'%'",
            )

    def drop(self) -> None:
        self.database.stop_children()
        self.database.drop()
        if self.kind == "postgresql":
            self._admin(f"DROP ROLE IF EXISTS {self.role}")
        else:
            self._admin(f"DROP USER IF EXISTS '{self.role}'@'%'")

    def env(self, **extra: str) -> dict[str, str]:
        user = "MEMDB_TEST_PG_USER" if self.kind == "postgresql" else "MEMDB_TEST_MYSQL_USER"
        return {user: self.role, **extra}

    def worker(self, name: str, settings: str = "tests.settings", **extra: str) -> Worker:
        return Worker(self.database, name, settings, **self.env(**extra))

    def begin(self) -> None:
        """Refuse new connections of the role and kill the open ones."""
        if self.kind == "postgresql":
            self._admin(
                f"ALTER ROLE {self.role} CONNECTION LIMIT 0",
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{self.role}'",
            )
        else:
            self._admin(f"ALTER USER '{self.role}'@'%' ACCOUNT LOCK")
            threads = self._admin(f"SELECT id FROM information_schema.processlist WHERE user = '{self.role}'")
            connection = _admin_connection(self.kind)
            try:
                for (thread,) in threads:
                    try:
                        _execute(connection, f"KILL CONNECTION {int(thread)}")
                    except Exception:  # gone meanwhile
                        pass
            finally:
                connection.close()

    def end(self) -> None:
        if self.kind == "postgresql":
            self._admin(f"ALTER ROLE {self.role} CONNECTION LIMIT -1")
        else:
            self._admin(f"ALTER USER '{self.role}'@'%' ACCOUNT UNLOCK")


@pytest.fixture
def outage(scratch: Scratch) -> Iterator[Outage]:
    if scratch.kind == "sqlite":
        pytest.skip("an outage needs a database server (MEMDB_TEST_DATABASE=postgresql or mariadb)")
    created = Outage(scratch)
    created.create()
    try:
        yield created
    finally:
        created.drop()


def _texts(database: Scratch) -> list[str]:
    """The Persistent rows a new process restores (read as the superuser)."""
    return [row["text"] for row in database.dump()["tests.Persistent"]]


def _stored(database: Scratch, marker: bytes) -> bool:
    return any(marker in entry.data for entry in database.stored())


def _wait(condition: Any, worker: Worker, what: str) -> None:
    """Poll ``condition``; the deadline is only there for a hang."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert worker.child.alive, worker.child.wait().describe()
        if time.monotonic() > deadline:
            worker.child.stop()
            pytest.fail(f"{what} never happened.\n{worker.child.result().describe()}")
        time.sleep(0.05)


def _later_process_keeps_everything(outage: Outage, expected: list[str]) -> None:
    """A later process writes and is killed: a restart restores every committed row."""
    later = outage.worker("later")
    assert later.call("write later") == ("ok", len(expected) + 1)
    assert later.child.send(signal.SIGKILL).returncode == KILLED
    assert _texts(outage.database) == [*expected, "later"]


@pytest.mark.parametrize("recovery", ["write", "spool", "exit"])
def test_commit_policy_stores_the_changes_of_an_outage_once_storage_is_back(
    outage: Outage, recovery: str
) -> None:
    worker = outage.worker("worker")
    assert worker.call("write before")[0] == "ok"

    outage.begin()
    key, message = worker.call("write during")
    # Committed in memory; storing it failed, and says so.
    assert key == "error" and message.startswith("PersistenceError"), message
    assert worker.call("texts") == ("ok", ["before", "during"])
    outage.end()

    if recovery == "write":
        assert worker.call("write after") == ("ok", 3)
        expected = ["before", "during", "after"]
        assert worker.child.send(signal.SIGKILL).returncode == KILLED
    elif recovery == "spool":
        assert worker.call("spool") == ("ok", None)
        expected = ["before", "during"]
        assert worker.child.send(signal.SIGKILL).returncode == KILLED
    else:
        result = worker.child.finish().check()
        assert "NOT stored" not in result.stderr, result.describe()
        expected = ["before", "during"]
    assert _texts(outage.database) == expected
    _later_process_keeps_everything(outage, expected)


def test_interval_policy_stores_the_changes_of_an_outage_once_storage_is_back(outage: Outage) -> None:
    worker = outage.worker("worker", **INTERVAL)
    assert worker.call("write before")[0] == "ok"
    _wait(lambda: _stored(outage.database, b"before"), worker, "storing 'before'")

    outage.begin()
    assert worker.call("write during")[0] == "ok"  # stored by the interval thread, later
    _wait(lambda: "could not be written" in worker.child.stderr_text(), worker, "a failed interval flush")
    assert not _stored(outage.database, b"during")
    outage.end()

    _wait(lambda: _stored(outage.database, b"during"), worker, "storing 'during' after the outage")
    assert worker.child.send(signal.SIGKILL).returncode == KILLED
    assert _texts(outage.database) == ["before", "during"]
    _later_process_keeps_everything(outage, ["before", "during"])


def test_a_write_after_the_lease_ran_out_during_an_outage_raises_persistence_error(outage: Outage) -> None:
    worker = outage.worker("worker", MEMDB_TEST_LEASE_SECONDS="1")
    assert worker.call("write before")[0] == "ok"

    outage.begin()
    # Past the lease's local validity and the second a passed check is trusted:
    # the next write must ask storage for the lease.
    time.sleep(2.5)
    key, message = worker.call("write refused")
    assert key == "error", message
    assert message.startswith("PersistenceError"), message
    assert "'default' database" in message and "cannot be reached" in message, message
    assert worker.call("texts") == ("ok", ["before"])  # memory untouched
    outage.end()

    assert worker.call("write after") == ("ok", 2)  # the refused row never existed
    assert worker.child.send(signal.SIGKILL).returncode == KILLED
    assert _texts(outage.database) == ["before", "after"]


def test_an_exit_while_storage_is_down_says_plainly_what_was_not_stored(outage: Outage) -> None:
    worker = outage.worker("worker")
    assert worker.call("write before")[0] == "ok"
    outage.begin()
    assert worker.call("write lost")[0] == "error"

    result = worker.child.finish().check()
    outage.end()

    assert "at exit, changes committed in memory to tests.Persistent were NOT stored" in result.stderr, (
        result.describe()
    )
    assert _texts(outage.database) == ["before"]


def test_the_first_write_after_an_idle_outage_is_stored_at_once(outage: Outage) -> None:
    # The server dropped the connection while the process did nothing: the
    # write after the outage finds it dead, and stores on a new one.
    worker = outage.worker("worker")
    assert worker.call("write before")[0] == "ok"
    outage.begin()
    outage.end()

    assert worker.call("write after") == ("ok", 2)
    assert worker.child.send(signal.SIGKILL).returncode == KILLED
    assert _texts(outage.database) == ["before", "after"]


CLUSTER = {"MEMDB_TEST_WORKER_MODEL": "cluster_app.Entry"}


def test_cluster_mode_recovers_both_connections_after_an_outage(outage: Outage) -> None:
    # The in-memory tables are on the server too: the write during the outage
    # fails on them (nothing committed), the next one reconnects both.
    worker = outage.worker("worker", "tests.settings_cluster", **CLUSTER)
    assert worker.call("write before")[0] == "ok"

    outage.begin()
    key, message = worker.call("write during")
    assert key == "error", message
    assert worker.call("write again")[0] == "error"  # still down: a new connection is refused
    outage.end()

    assert worker.call("write after")[0] == "ok"
    assert worker.call("texts") == ("ok", ["before", "after"])
    assert _stored(outage.database, b"after")
    assert worker.child.send(signal.SIGKILL).returncode == KILLED
    later = outage.worker("later", "tests.settings_cluster", **CLUSTER)
    assert later.call("texts") == ("ok", ["before", "after"])
