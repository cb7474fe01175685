"""Group commit: threads that commit at once share one write of storage, each returning
once its own changes are stored, and none holds the in-memory lock while storage syncs."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connections

from django_memdb import lifecycle, rows, spool
from django_memdb.exceptions import PersistenceError
from tests.models import Persistent
from tests.processes import KILLED, Child, Result, Scratch
from tests.storage_view import assert_persisted, stored

# Generous: reached only when something hangs (a deadlock), never a measure of speed.
TIMEOUT = 60.0


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _in_memory(prefix: str) -> int:
    return Persistent.objects.filter(text__startswith=prefix).count()


class Threads:
    """Threads that each run one action and record how it ended."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.returned: dict[str, bool] = {}
        self.failed: dict[str, BaseException] = {}

    def start(self, name: str, action: Callable[[], Any]) -> None:
        def run() -> None:
            try:
                action()
                self.returned[name] = True
            except BaseException as exc:
                self.failed[name] = exc
            finally:
                connections.close_all()

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def create(self, text: str) -> None:
        self.start(text, lambda: Persistent.objects.create(text=text))

    def join(self) -> None:
        for thread in self.threads:
            thread.join(TIMEOUT)
            assert not thread.is_alive(), f"{thread.name} is stuck (deadlock?)"


class BlockedWrite:
    """Holds the first journal write of the fast path until released; records every batch.

    Wraps ``spool._append_held``, the one call that writes a batch without the
    lock, whichever kind of entry it writes (a conditional or a plain INSERT).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.batches: list[list[str]] = []
        self.fail = fail
        real = spool._append_held

        def append(database: Any, spool_connection: Any, work: Any) -> bool:
            texts = (item["fields"]["text"] for _, _, items, _ in work for item in rows.as_items(items))
            self.batches.append(sorted(texts))
            if len(self.batches) == 1:
                self.entered.set()
                assert self.release.wait(TIMEOUT)
                if self.fail:
                    raise DatabaseError("the disk is full")
            return real(database, spool_connection, work)

        monkeypatch.setattr(spool, "_append_held", append)


@pytest.fixture
def database() -> Iterator[Any]:
    database = lifecycle.current_database()
    Persistent.objects.create(text="first")  # claims the lease, writes the first snapshot
    yield database
    database.failed.clear()


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
def test_commits_made_while_storage_is_written_go_together_in_the_next_write(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = BlockedWrite(monkeypatch)
    threads = Threads()
    threads.create("writer")
    assert write.entered.wait(TIMEOUT)
    # The writer waits for storage without the lock: the others commit in memory meanwhile.
    for number in range(6):
        threads.create(f"rider {number}")
    _until(lambda: _in_memory("rider") == 6, "the riders' commits in memory")
    # ... and none of them returns before its row is stored.
    time.sleep(0.2)
    assert threads.returned == {} and threads.failed == {}
    write.release.set()
    threads.join()

    assert threads.failed == {}
    assert write.batches == [["writer"], [f"rider {number}" for number in range(6)]]
    assert_persisted(Persistent)
    assert spool.pending_changes(database) == 0


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
def test_a_holder_of_the_lock_flushes_while_another_thread_writes_storage(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a TestCase's transaction, compaction or an inspection command: the lock is held
    # around the flush, which waits for the writer, who must not need the lock to finish.
    write = BlockedWrite(monkeypatch)
    threads = Threads()
    threads.create("writer")
    assert write.entered.wait(TIMEOUT)
    releaser = threading.Timer(0.3, write.release.set)
    releaser.start()
    with database.lock:
        Persistent.objects.create(text="owner")  # flushed with the lock held
        assert {fields["text"] for fields in stored(Persistent).values()} == {"first", "writer", "owner"}
        assert spool.pending_changes(database) == 0
    threads.join()
    releaser.join()

    assert threads.failed == {}
    assert write.batches == [["writer"], ["owner"]]
    assert_persisted(Persistent)


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
def test_a_failed_write_fails_its_caller_and_the_waiting_threads_store_their_rows(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = BlockedWrite(monkeypatch, fail=True)
    threads = Threads()
    threads.create("writer")
    assert write.entered.wait(TIMEOUT)
    for number in range(4):
        threads.create(f"rider {number}")
    _until(lambda: _in_memory("rider") == 4, "the riders' commits in memory")
    write.release.set()
    threads.join()

    assert set(threads.failed) == {"writer"}
    assert isinstance(threads.failed["writer"], PersistenceError)
    assert "the disk is full" in str(threads.failed["writer"])
    # Nothing was lost: the failed batch's rows were taken again by the next one.
    assert set(threads.returned) == {f"rider {number}" for number in range(4)}
    assert write.batches[1] == ["rider 0", "rider 1", "rider 2", "rider 3", "writer"]
    assert database.pending_error is None
    assert spool.pending_changes(database) == 0
    assert_persisted(Persistent)


# Real processes: a killed process left every acknowledged write in storage.


def _threads(scratch: Scratch, *options: str, env: dict[str, str] | None = None) -> Child:
    return scratch.launch("threads", *options, env=env)


def _acked(child: Child) -> int:
    return sum(1 for line in child.lines if line.startswith("@acked "))


def _check_acknowledged(acked: list[dict[str, Any]], restored: list[dict[str, Any]]) -> None:
    """Every acknowledged row is there, with its last acknowledged text or a later one."""
    texts = {row["id"]: row["text"] for row in restored}
    last: dict[int, str] = {}
    for write in acked:
        last[write["pk"]] = write["text"]
    for pk, text in last.items():
        assert pk in texts, f"acknowledged row {pk} ({text!r}) was lost"
        name, _, number = text.rpartition(" ")
        if name.endswith(" last"):
            # A row moved forward by its thread: never back to an older state.
            found_name, _, found = texts[pk].rpartition(" ")
            assert found_name == name and int(found) >= int(number), (pk, text, texts[pk])
        else:
            assert texts[pk] == text


@pytest.mark.processes
def test_rows_acknowledged_to_eight_threads_survive_a_kill(scratch: Scratch) -> None:
    child = _threads(scratch, "--threads", "8", "--tag", "killed")
    _until(lambda: _acked(child) >= 200 or not child.alive, "200 acknowledged writes")
    result: Result = child.send(signal.SIGKILL)
    assert result.returncode == KILLED, result.describe()

    restored = scratch.dump()["tests.Persistent"]
    _check_acknowledged(result.records["acked"], restored)
    # The next process carries on from there.
    assert scratch.run("mark", "--tag", "after").returncode == 0


@pytest.mark.processes
def test_host_mode_two_processes_of_threads_store_every_row_in_order(scratch: Scratch, tmp_path: Path) -> None:
    for directory in ("host", "elsewhere"):
        (tmp_path / directory).mkdir()
    host = {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path / "host")}
    children = [
        _threads(scratch, "--threads", "4", "--rounds", "15", "--tag", name, env=host) for name in ("a", "b")
    ]
    results = [child.wait().check() for child in children]
    # Both gone: a process of another host (a new file) restores from storage alone.
    elsewhere = {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path / "elsewhere")}
    restored = _dump(scratch, elsewhere)
    acked = [write for result in results for write in result.records["acked"]]
    _check_acknowledged(acked, restored)
    # Each thread's last write is the final state of its row.
    final = {row["text"] for row in restored}
    for name in ("a", "b"):
        for number in range(4):
            assert f"{name} t{number} last 14" in final
    assert len(restored) == 2 * 4 * 16


def _dump(scratch: Scratch, env: dict[str, str]) -> list[dict[str, Any]]:
    result = scratch.run("dump", env=env)
    rows: list[dict[str, Any]] = result["dump"]["tests.Persistent"]
    return rows
