"""Group commit, whose turn it is: the writer of a batch writes the next one for the
threads waiting for it, and a failure of that batch is theirs, not its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError

from django_memdb import group_commit, lifecycle, spool
from tests.models import Persistent
from tests.storage_view import assert_persisted
from tests.test_group_commit import TIMEOUT, Threads, _in_memory, _until


class RecordedWrites:
    """Holds the first batch write until released; records who wrote each batch, and what.

    ``fail``: the numbers of the writes (1 for the first) that fail after the hold.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: tuple[int, ...] = ()) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.batches: list[tuple[str, list[str]]] = []
        real = spool._append_held

        def append(database: Any, spool_connection: Any, work: Any) -> bool:
            texts = sorted(item["fields"]["text"] for _, _, items, _ in work for item in items)
            self.batches.append((threading.current_thread().name, texts))
            if len(self.batches) == 1:
                self.entered.set()
                assert self.release.wait(TIMEOUT)
            if len(self.batches) in fail:
                raise DatabaseError("the disk is full")
            return real(database, spool_connection, work)

        monkeypatch.setattr(spool, "_append_held", append)


@pytest.fixture
def database() -> Iterator[Any]:
    database = lifecycle.current_database()
    Persistent.objects.create(text="first")  # claims the lease, writes the first snapshot
    yield database
    database.failed.clear()


def _riders_wait(threads: Threads, count: int) -> None:
    for number in range(count):
        threads.create(f"rider {number}")
    _until(lambda: _in_memory("rider") == count, "the riders' commits in memory")
    group = group_commit.of(lifecycle.current_database())
    _until(lambda: len(group._sleepers) == count, "the riders asleep")


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
def test_the_writer_writes_the_batch_its_riders_wait_for(database: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    writes = RecordedWrites(monkeypatch)
    threads = Threads()
    threads.create("writer")
    assert writes.entered.wait(TIMEOUT)
    _riders_wait(threads, 4)
    writes.release.set()
    threads.join()

    assert threads.failed == {}
    assert set(threads.returned) == {"writer", *(f"rider {number}" for number in range(4))}
    # The writer is running already: it takes the riders' batch rather than wake one of them for it.
    assert writes.batches == [("writer", ["writer"]), ("writer", [f"rider {number}" for number in range(4)])]
    assert spool.pending_changes(database) == 0
    assert_persisted(Persistent)


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
def test_a_failed_batch_written_for_others_is_retried_by_them_not_raised_to_its_writer(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = RecordedWrites(monkeypatch, fail=(2,))
    threads = Threads()
    threads.create("writer")
    assert writes.entered.wait(TIMEOUT)
    _riders_wait(threads, 3)
    writes.release.set()
    threads.join()

    # The writer's own row was stored: it returns. The riders retry their batch themselves.
    assert threads.failed == {}
    assert set(threads.returned) == {"writer", *(f"rider {number}" for number in range(3))}
    riders = [f"rider {number}" for number in range(3)]
    assert writes.batches[:2] == [("writer", ["writer"]), ("writer", riders)]
    assert writes.batches[2][0] in riders and writes.batches[2][1] == riders
    assert database.pending_error is None
    assert spool.pending_changes(database) == 0
    assert_persisted(Persistent)
