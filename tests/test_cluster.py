"""Cluster mode against this machine's PostgreSQL or MariaDB: the in-memory tables on the server.

Run in the PostgreSQL and MariaDB passes (MEMDB_TEST_DATABASE); the SQLite
pass leaves them out, as it has no server to put the tables on.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import databases
from tests import private_server as private_server_module
from tests.private_server import PrivateServer
from tests.processes import KILLED, Scratch
from tests.servers import Server, Worker

pytestmark = [pytest.mark.processes, pytest.mark.cluster]

SETTINGS = "tests.settings_cluster"
ENTRY = {"MEMDB_TEST_WORKER_MODEL": "cluster_app.Entry"}
TABLES = (
    "cluster_app_entry", "cluster_app_tag", "cluster_app_scratchpad", "cluster_app's", "django_memdb_changes",
    "django_memdb_cluster",
)
RESTORING = "the server holds no in-memory tables: restoring them from storage"


def lose_the_tables(database: Scratch) -> None:
    """What the server does to the tables: MEMORY is empty after a restart, UNLOGGED after a crash."""
    connection = database._connect()
    try:
        cursor = connection.cursor()
        if database.kind == "postgresql":
            quoted = ", ".join(f'"{table}"' for table in TABLES)
            cursor.execute(f"TRUNCATE {quoted}")
        else:
            for table in TABLES:
                cursor.execute(f"TRUNCATE TABLE `{table}`")
        cursor.close()
    finally:
        connection.close()


def engine_of(database: Scratch, table: str) -> str:
    connection = database._connect()
    try:
        cursor = connection.cursor()
        if database.kind == "postgresql":
            cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = %s", [table])
            return {"u": "UNLOGGED", "p": "LOGGED"}[cursor.fetchone()[0]]
        cursor.execute(
            "SELECT engine FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            [database.name, table],
        )
        return str(cursor.fetchone()[0])
    finally:
        connection.close()


def test_workers_share_one_truth_and_the_server_restores_it_once(scratch: Scratch, tmp_path: Path) -> None:
    server = Server(scratch, tmp_path, SETTINGS)
    try:
        texts = [f"t{number}" for number in range(30)]
        pids = server.post_each(texts)
        expected = "UNLOGGED" if scratch.kind == "postgresql" else "MEMORY"
        assert engine_of(scratch, "cluster_app_entry") == expected

        os.kill(next(iter(pids)), signal.SIGKILL)  # its replacement joins the same tables
        for number in range(30, 40):
            texts.append(f"t{number}")
            assert server.post(texts[-1])["texts"] == texts

        lose_the_tables(scratch)
        for _ in range(6):  # every worker opens a new connection per request, and checks
            assert server.get()["texts"] == texts
        texts.append("after the loss")
        assert server.post(texts[-1])["texts"] == texts
    finally:
        server.stop()
    log = server.log_text()
    # Once when the first worker started, once after the loss: never by two workers.
    assert log.count(RESTORING) == 2, log

    restarted = Server(scratch, tmp_path, SETTINGS)  # all workers gone: the tables stay on the server
    try:
        assert restarted.get()["texts"] == texts
    finally:
        restarted.stop()
    assert restarted.log_text().count(RESTORING) == 0


def test_a_surviving_process_stores_what_a_killed_one_left(scratch: Scratch) -> None:
    # Under "shutdown" nothing is stored before exit: the killed worker's rows are
    # only on the server, with their change records, and the survivor stores them.
    policy = {**ENTRY, "MEMDB_TEST_DURABILITY": "shutdown"}
    killed = Worker(scratch, "killed", SETTINGS, **policy)
    survivor = Worker(scratch, "survivor", SETTINGS, **policy)
    killed.ask("write left behind")
    assert survivor.ask("texts") == ["left behind"]
    killed.child.send(signal.SIGKILL)
    survivor.ask("write from the survivor")
    survivor.child.finish().check()

    lose_the_tables(scratch)
    fresh = Worker(scratch, "fresh", SETTINGS, **ENTRY)
    assert fresh.ask("texts") == ["left behind", "from the survivor"]
    fresh.child.finish().check()


def test_commit_policy_stores_every_write_before_it_returns(scratch: Scratch) -> None:
    first = Worker(scratch, "first", SETTINGS, **ENTRY)
    second = Worker(scratch, "second", SETTINGS, **ENTRY)
    for number in range(10):
        (first if number % 2 else second).ask(f"write w{number}")
    first.child.send(signal.SIGKILL)
    second.child.send(signal.SIGKILL)  # no exit flush at all
    lose_the_tables(scratch)
    fresh = Worker(scratch, "fresh", SETTINGS, **ENTRY)
    assert fresh.ask("texts") == [f"w{number}" for number in range(10)]
    assert fresh.ask("write w10") == 11  # keys go on after the restored rows
    fresh.child.finish().check()


@pytest.fixture
def private_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateServer]:
    """A server of this test's own, migrated, which the default database settings point at."""
    kind = databases.kind()
    missing = private_server_module.missing_programs(kind)
    if missing:
        message = f"a private {kind} server needs {missing}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    server = PrivateServer(kind, tmp_path / "server")
    try:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("crash", [False, True], ids=["restart", "crash"])
def test_after_a_real_server_restart_the_tables_come_back_from_storage(
    private_server: PrivateServer, tmp_path: Path, crash: bool
) -> None:
    database = Scratch(private_server.kind, "memdb_private", tmp_path)
    database.create()
    database.manage("migrate", "--noinput", "--verbosity", "0")
    server = Server(database, tmp_path, SETTINGS)
    try:
        texts = [f"r{number}" for number in range(10)]
        for text in texts:
            server.post(text)
        # MEMORY tables are empty after any restart; UNLOGGED ones after a crash.
        private_server.restart(crash=crash)
        if private_server.kind == "postgresql" and not crash:
            lose_the_tables(database)  # a clean PostgreSQL restart keeps UNLOGGED rows
        assert server.get()["texts"] == texts  # a new connection per request: restored
        texts.append("after the restart")
        assert server.post(texts[-1])["texts"] == texts
    finally:
        server.stop()
        database.stop_children()
    assert server.log_text().count(RESTORING) == 2


def test_the_commands_work_on_the_shared_tables(scratch: Scratch) -> None:
    worker = Worker(scratch, "worker", SETTINGS, **ENTRY)
    for number in range(3):
        worker.ask(f"write c{number}")
    status = scratch.manage("memdb_status", settings=SETTINGS).stdout
    assert "Mode: cluster (every process shares" in status
    assert re.search(r"cluster_app\.Entry\s+yes\s+3\s", status), status
    assert "3 rows, memory matches storage" in scratch.manage("memdb_verify", settings=SETTINGS).stdout
    assert "snapshot of 3 rows" in scratch.manage("memdb_spool", settings=SETTINGS).stdout
    restored = scratch.manage("memdb_restore", "--model", "cluster_app.Entry", settings=SETTINGS).stdout
    assert "cluster_app.Entry: restored 3 rows" in restored
    assert worker.ask("texts") == ["c0", "c1", "c2"]
    assert worker.ask("write c3") == 4  # a reload is not journaled again, and keys go on
    worker.child.finish().check()
    assert "4 rows, memory matches storage" in scratch.manage("memdb_verify", settings=SETTINGS).stdout


def test_django_test_runner_uses_the_test_database(scratch: Scratch) -> None:
    worker = Worker(scratch, "worker", SETTINGS, **ENTRY)
    worker.ask("write production row")
    worker.child.finish().check()
    result = scratch.manage("test", "tests.cluster_app.runner_probe", "--noinput", settings=SETTINGS)
    assert "Ran 2 tests" in result.stderr and "OK" in result.stderr, result.stderr
    fresh = Worker(scratch, "fresh", SETTINGS, **ENTRY)
    assert fresh.ask("texts") == ["production row"]  # the tests never touched it
    fresh.child.finish().check()


def test_killed_mid_rebuild_or_mid_journal_nothing_is_lost(scratch: Scratch) -> None:
    writer = Worker(scratch, "writer", SETTINGS, **ENTRY)
    for number in range(3):
        writer.ask(f"write k{number}")
    writer.child.finish().check()
    texts = ["k0", "k1", "k2"]

    # Killed after loading the tables, before their triggers and the marker: the next process rebuilds.
    lose_the_tables(scratch)
    dying = Worker(scratch, "dying", SETTINGS, MEMDB_TEST_WORKER_DIE_AT="restored", **ENTRY)
    assert dying.send("texts").returncode == KILLED
    # Killed after committing a journal entry, before deleting its change record: written again, the same.
    journaling = Worker(scratch, "journaling", SETTINGS, MEMDB_TEST_WORKER_DIE_AT="journaled", **ENTRY)
    assert journaling.send("write k3").returncode == KILLED
    texts.append("k3")
    other = Worker(scratch, "other", SETTINGS, **ENTRY)
    assert other.ask("texts") == texts
    other.ask("write k4")
    texts.append("k4")
    other.child.finish().check()

    lose_the_tables(scratch)
    fresh = Worker(scratch, "fresh", SETTINGS, **ENTRY)
    assert fresh.ask("texts") == texts
    fresh.child.finish().check()


def test_a_write_left_pending_by_a_rolled_back_default_transaction_is_stored_when_the_request_ends(
    scratch: Scratch, tmp_path: Path
) -> None:
    # Its journal entry cannot go into the default database's transaction; that
    # rolls back, and the end of the request stores the change.
    server = Server(scratch, tmp_path, SETTINGS)
    try:
        server.request(urllib.parse.urlencode({"text": "kept"}).encode(), "/rolled-back-default/")
        deadline = time.monotonic() + 20
        while not scratch.stored_for("Entry"):
            assert time.monotonic() < deadline, "the change was not stored when the request ended"
            time.sleep(0.1)
    finally:
        server.kill()  # no exit flush
    lose_the_tables(scratch)
    fresh = Worker(scratch, "fresh", SETTINGS, **ENTRY)
    assert fresh.ask("texts") == ["kept"]
    fresh.child.finish().check()


def test_a_table_named_with_a_quote_is_rebuilt_from_storage(scratch: Scratch) -> None:
    odd = {"MEMDB_TEST_WORKER_MODEL": "cluster_app.OddName"}
    writer = Worker(scratch, "writer", SETTINGS, **odd)
    for text in ("100%", "it's", "%s"):
        writer.ask(f"write {text}")
    writer.child.finish().check()

    lose_the_tables(scratch)  # the marker row is gone: the next process rebuilds
    fresh = Worker(scratch, "fresh", SETTINGS, **odd)
    assert fresh.ask("texts") == ["100%", "it's", "%s"]
    assert fresh.ask("write after the rebuild") == 4  # the key sequence follows the restored rows
    fresh.child.finish().check()


def test_every_acknowledged_row_survives_a_sigkill_of_every_worker(scratch: Scratch, tmp_path: Path) -> None:
    # Concurrent commits of several workers are journaled together (group commit):
    # each request is answered only once its own row is stored, whoever stored it.
    server = Server(scratch, tmp_path, SETTINGS)
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def client(number: int) -> None:
        sent = 0
        while not stop.is_set():
            text = f"c{number}-{sent}"
            try:
                server.request(urllib.parse.urlencode({"text": text}).encode(), "/both/")
            except OSError as exc:
                if not stop.is_set():  # after it, the kill cuts requests in flight
                    failures.append(exc)
                return
            acknowledged.append(text)
            sent += 1

    clients = [threading.Thread(target=client, args=(number,)) for number in range(4)]
    try:
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 100 and time.monotonic() < deadline and not failures:
            time.sleep(0.1)
    finally:
        stop.set()
        server.kill()  # every worker and the master at once, requests in flight
        for thread in clients:
            thread.join()
    assert not failures, failures
    assert len(acknowledged) > 20, "too few requests were answered to tell"

    lose_the_tables(scratch)  # what the server's own crash or restart does: restored from storage only
    restarted = Server(scratch, tmp_path, SETTINGS)
    try:
        texts = restarted.get()["texts"]
    finally:
        restarted.stop()
    assert RESTORING in restarted.log_text()
    assert set(acknowledged) <= set(texts), sorted(set(acknowledged) - set(texts))
    assert len(texts) == len(set(texts))  # a change journaled twice is still one row
