"""Group commit, whose turn it is: the end of a batch wakes the threads it stored and
one thread to write the next batch; the others sleep on until their batch is stored."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from django_memdb import group_commit, rows, spool
from tests import test_group_commit
from tests.models import Persistent
from tests.storage_view import assert_persisted
from tests.test_group_commit import TIMEOUT, Threads, _in_memory, _until

# The fixture of the group commit tests: the lease claimed, a first snapshot written.
database = test_group_commit.database


class HeldWrites:
    """Holds each of the first ``held`` batch writes until released; records who wrote what."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, held: int) -> None:
        self.entered = [threading.Event() for _ in range(held)]
        self.release = [threading.Event() for _ in range(held)]
        self.batches: list[tuple[str, list[str]]] = []
        real = spool._append_held

        def append(database: Any, spool_connection: Any, work: Any) -> bool:
            texts = sorted(item["fields"]["text"] for _, _, items, _ in work for item in rows.as_items(items))
            self.batches.append((threading.current_thread().name, texts))
            number = len(self.batches) - 1
            if number < held:
                self.entered[number].set()
                assert self.release[number].wait(TIMEOUT)
            return real(database, spool_connection, work)

        monkeypatch.setattr(spool, "_append_held", append)


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
def test_a_stored_batch_wakes_one_waiting_thread_to_write_the_next(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = HeldWrites(monkeypatch, held=2)
    group = group_commit.of(database)
    threads = Threads()
    threads.create("writer")
    assert writes.entered[0].wait(TIMEOUT)
    riders = [f"rider {number}" for number in range(4)]
    for rider in riders:
        threads.create(rider)
    _until(lambda: _in_memory("rider") == 4, "the riders' commits in memory")
    _until(lambda: len(group._sleepers) == 4, "the riders asleep")

    writes.release[0].set()
    assert writes.entered[1].wait(TIMEOUT)
    # One rider was woken and writes the riders' batch; the three others sleep on.
    _until(lambda: "writer" in threads.returned, "the writer's return")
    assert writes.batches[1][0] in riders and writes.batches[1][1] == riders
    assert len(group._sleepers) == 3
    assert not set(threads.returned) & set(riders)

    writes.release[1].set()
    threads.join()
    assert threads.failed == {}
    assert set(threads.returned) == {"writer", *riders}
    assert len(writes.batches) == 2 and group._sleepers == []
    assert spool.pending_changes(database) == 0
    assert_persisted(Persistent)


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
def test_a_thread_woken_to_write_that_does_not_leaves_the_others_to_look_again(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Should the woken thread leave without writing (an exception before it begins),
    # the others find by themselves, after group_commit.RECHECK, that nobody writes.
    writes = HeldWrites(monkeypatch, held=1)
    group = group_commit.of(database)
    real_begin = group.begin
    refused: list[str] = []

    def begin(ticket: int) -> int | None:
        if not refused:
            refused.append(threading.current_thread().name)
            raise KeyboardInterrupt  # as a signal would, between the wake-up and the batch
        return real_begin(ticket)

    threads = Threads()
    threads.create("writer")
    assert writes.entered[0].wait(TIMEOUT)
    riders = [f"rider {number}" for number in range(3)]
    for rider in riders:
        threads.create(rider)
    _until(lambda: len(group._sleepers) == 3, "the riders asleep")
    monkeypatch.setattr(group, "begin", begin)
    writes.release[0].set()
    threads.join()

    assert set(threads.failed) == set(refused) and len(refused) == 1
    assert set(threads.returned) == {"writer", *riders} - set(refused)
    assert spool.pending_changes(database) == 0
    assert_persisted(Persistent)
