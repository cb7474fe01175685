"""The journal write of a lease owner: one statement while it holds the lease, the
full path (claim) otherwise, and the loads of other processes that make it claim."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from django.db import DatabaseError, connections, transaction
from django.db.models import F
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_memdb import group_commit, lease, lifecycle, restore, server_lease, spool, storage
from django_memdb.conf import conf
from django_memdb.exceptions import PersistenceError
from django_memdb.models import PersistentJournal, PersistentStorage, SpoolLease
from tests.models import Counter, Other, Persistent
from tests.processes import Scratch
from tests.storage_view import assert_persisted, stored
from tests.test_multiprocess import Worker

SPOOL = "default"


def _journal(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if PersistentJournal._meta.db_table in q["sql"]]


def _lease_updates(captured: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"] for q in captured.captured_queries
        if q["sql"].startswith("UPDATE") and SpoolLease._meta.db_table in q["sql"]
    ]


class _Captured:
    """The statements of the spool alias's connection and of the server lock's session, in one list."""

    def __init__(self, parts: list[CaptureQueriesContext]) -> None:
        self.parts = parts

    @property
    def captured_queries(self) -> list[dict[str, str]]:
        return [query for part in self.parts for query in part.captured_queries]


@contextmanager
def _spool_queries() -> Iterator[_Captured]:
    with ExitStack() as stack:
        parts = [stack.enter_context(CaptureQueriesContext(connections[SPOOL]))]
        session = server_lease.lock(SPOOL).connection
        if session is not None:
            parts.append(stack.enter_context(CaptureQueriesContext(session)))
        yield _Captured(parts)


def _server_lease() -> bool:
    return server_lease.applies(lifecycle.current_database(), connections[SPOOL])


@pytest.fixture
def row_lease(monkeypatch: Any) -> None:
    """The lease of the SQLite spool and of mode host (a row), also where the server's lock would be."""
    monkeypatch.setattr(type(lifecycle.current_database().mode), "server_lease", False)


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
class InProcessTests:
    @pytest.fixture(autouse=True)
    def _database(self) -> Iterator[None]:
        self.database = lifecycle.current_database()
        yield
        self.database.failed.clear()

    def _generation(self) -> int:
        return int(SpoolLease.objects.using(SPOOL).values_list("generation", flat=True).get())

    def test_a_write_of_the_lease_owner_is_one_statement(self) -> None:
        Persistent.objects.create(text="first")  # claims the lease and writes the snapshot
        generation = self._generation()
        with _spool_queries() as captured:
            Persistent.objects.create(text="second")
        assert len(captured.captured_queries) == 1, captured.captured_queries
        assert captured.captured_queries[0]["sql"].startswith("INSERT INTO")
        if _server_lease():  # a plain INSERT: no lease row, no snapshot row read
            assert " VALUES " in captured.captured_queries[0]["sql"]
            assert SpoolLease._meta.db_table not in captured.captured_queries[0]["sql"]
        Persistent.objects.filter(text="first").update(text="first, updated")
        assert self._generation() == generation  # nothing claimed meanwhile
        assert self.database.tables[Persistent].journal_entries == 2
        assert_persisted(Persistent)

    @pytest.mark.usefixtures("row_lease")
    def test_a_removed_snapshot_is_written_again(self) -> None:
        Persistent.objects.create(text="first")
        Persistent.objects.create(text="second")
        PersistentStorage.objects.using(SPOOL).filter(modelname="Persistent").delete()
        with CaptureQueriesContext(connections[SPOOL]) as captured:
            Persistent.objects.create(text="third")
        assert _lease_updates(captured)  # the fast path inserted nothing: claimed
        assert [f["text"] for f in stored(Persistent).values()] == ["first", "second", "third"]
        assert_persisted(Persistent)

    @pytest.mark.usefixtures("row_lease")
    def test_a_bumped_generation_makes_the_owner_claim(self) -> None:
        Persistent.objects.create(text="first")
        # What another process's load does (lease.observe).
        SpoolLease.objects.using(SPOOL).update(generation=F("generation") + 1)
        bumped = self._generation()
        with CaptureQueriesContext(connections[SPOOL]) as captured:
            Persistent.objects.create(text="second")
        assert _lease_updates(captured)
        assert self._generation() == bumped + 1 == self.database.lease_generation
        with _spool_queries() as captured:
            Persistent.objects.create(text="third")
        assert len(captured.captured_queries) == 1  # held again
        assert_persisted(Persistent)

    @pytest.mark.usefixtures("row_lease")
    def test_an_emptied_table_is_removed_by_the_owner_without_the_lock(self, monkeypatch: Any) -> None:
        # A large journal takes long to delete: not while every thread waits for the in-memory lock.
        Persistent.objects.create(text="first")
        Persistent.objects.create(text="second")
        Other.objects.create(number=1)
        generation = self._generation()
        removals: list[bool] = []
        delete_stored_held = storage.delete_stored_held

        def removal(*args: Any) -> bool:
            removals.append(group_commit.holds(self.database.lock))
            return delete_stored_held(*args)

        monkeypatch.setattr(storage, "delete_stored_held", removal)
        with CaptureQueriesContext(connections[SPOOL]) as captured:
            Persistent.objects.all().delete()
        assert removals == [False] and not _lease_updates(captured)
        assert self._generation() == generation
        assert not PersistentStorage.objects.using(SPOOL).filter(modelname="Persistent").exists()
        assert not PersistentJournal.objects.using(SPOOL).filter(modelname="Persistent").exists()
        assert Persistent not in self.database.tables
        Persistent.objects.create(text="again")  # a first snapshot again
        assert_persisted(Persistent, Other)

    @pytest.mark.usefixtures("row_lease")
    def test_an_emptied_table_is_not_removed_under_a_lease_that_moved_on(self) -> None:
        Persistent.objects.create(text="first")
        Persistent.objects.create(text="second")
        SpoolLease.objects.using(SPOOL).update(generation=F("generation") + 1)  # another process's load
        bumped = self._generation()
        with CaptureQueriesContext(connections[SPOOL]) as captured:
            Persistent.objects.all().delete()
        # The removal of the fast path removed nothing; the claim of the next batch did.
        assert _lease_updates(captured)
        assert self._generation() == bumped + 1 == self.database.lease_generation
        assert not PersistentStorage.objects.using(SPOOL).filter(modelname="Persistent").exists()
        assert not PersistentJournal.objects.using(SPOOL).filter(modelname="Persistent").exists()

    def test_a_lease_near_its_expiry_is_renewed_by_a_claim(self) -> None:
        Persistent.objects.create(text="first")
        self.database.lease_until = timezone.now() + datetime.timedelta(seconds=1)
        with CaptureQueriesContext(connections[SPOOL]) as captured:
            Persistent.objects.create(text="second")
        assert _lease_updates(captured)
        assert self.database.lease_until > timezone.now() + datetime.timedelta(seconds=20)
        assert_persisted(Persistent)

    @pytest.mark.usefixtures("row_lease")
    def test_a_commit_of_two_tables_is_journaled_in_one_transaction(self, monkeypatch: Any) -> None:
        Persistent.objects.create(text="a")
        Other.objects.create(number=1)
        with CaptureQueriesContext(connections[SPOOL]) as captured:
            with transaction.atomic(using="django_memdb"):
                Persistent.objects.create(text="b")
                Other.objects.create(number=2)
        assert len(_journal(captured)) == 2 and not _lease_updates(captured)
        assert_persisted(Persistent, Other)

        # The second append fails: the first one is rolled back with it.
        calls: list[str] = []
        append = storage.append_journal_held

        def failing(model: Any, *args: Any) -> bool:
            calls.append(model.__name__)
            if len(calls) == 2:
                raise DatabaseError("the server went away")
            return append(model, *args)

        entries = PersistentJournal.objects.using(SPOOL).count()
        monkeypatch.setattr(storage, "append_journal_held", failing)
        with pytest.raises(PersistenceError), transaction.atomic(using="django_memdb"):
            Persistent.objects.create(text="c")
            Other.objects.create(number=3)
        assert len(calls) == 2
        assert PersistentJournal.objects.using(SPOOL).count() == entries  # nothing of it
        assert spool.pending_changes(self.database) == 2
        monkeypatch.undo()
        Persistent.objects.create(text="d")  # the next flush takes all that is pending
        assert_persisted(Persistent, Other)

    @pytest.mark.usefixtures("row_lease")
    def test_a_commit_of_two_tables_with_a_bumped_lease_is_claimed(self) -> None:
        Persistent.objects.create(text="a")
        Other.objects.create(number=1)
        SpoolLease.objects.using(SPOOL).update(generation=F("generation") + 1)
        entries = PersistentJournal.objects.using(SPOOL).count()
        with CaptureQueriesContext(connections[SPOOL]) as captured:
            with transaction.atomic(using="django_memdb"):
                Persistent.objects.create(text="b")
                Other.objects.create(number=2)
        assert _lease_updates(captured)
        assert PersistentJournal.objects.using(SPOOL).count() == entries + 2  # once each
        assert_persisted(Persistent, Other)

    @pytest.mark.database("postgresql", "mariadb")
    def test_the_lock_holder_appends_plain_inserts_past_a_loaders_bump(self) -> None:
        Persistent.objects.create(text="first")
        SpoolLease.objects.using(SPOOL).update(generation=F("generation") + 1)  # a load elsewhere
        bumped = self._generation()
        with _spool_queries() as captured:
            Persistent.objects.create(text="second")
        assert len(captured.captured_queries) == 1 and not _lease_updates(captured), captured.captured_queries
        assert self._generation() == bumped  # the loader's watermark tells it instead (lease.py)
        assert_persisted(Persistent)

    @pytest.mark.database("postgresql", "mariadb")
    def test_a_failed_plain_append_writes_nothing_and_the_full_path_writes_it_once(self, monkeypatch: Any) -> None:
        Persistent.objects.create(text="a")
        Other.objects.create(number=1)
        calls: list[str] = []
        append = storage.append_journal_plain

        def failing(model: Any, *args: Any) -> None:
            calls.append(model.__name__)
            if len(calls) == 2:
                raise DatabaseError("refused")
            append(model, *args)

        entries = PersistentJournal.objects.using(SPOOL).count()
        monkeypatch.setattr(storage, "append_journal_plain", failing)
        with _spool_queries() as captured, transaction.atomic(using="django_memdb"):
            Persistent.objects.create(text="b")
            Other.objects.create(number=2)
        assert len(calls) == 2 and _lease_updates(captured)  # rolled back, then claimed
        assert PersistentJournal.objects.using(SPOOL).count() == entries + 2  # once each
        assert spool.pending_changes(self.database) == 0
        assert_persisted(Persistent, Other)

    @override_settings(MEMDB_COMPACT_MIN_ROWS=5, MEMDB_COMPACT_RATIO=1.0)
    def test_many_small_entries_are_compacted(self) -> None:
        Counter.objects.bulk_create([Counter(name=str(i)) for i in range(200)])  # the snapshot
        rows, entries = storage.journal_limits(200, 5, 1.0)
        assert entries < rows
        first = Counter.objects.order_by("pk").first()
        assert first is not None
        for i in range(int(entries)):
            first.value = i
            first.save()
        state = self.database.tables[Counter]
        assert state.journal_entries == entries and state.journal_rows < rows
        first.value = -1
        first.save()  # one entry more than the bound
        assert PersistentJournal.objects.using(SPOOL).filter(modelname="Counter").count() == 0
        assert (state.journal_entries, state.journal_rows, state.snapshot_rows) == (0, 0, 200)
        assert_persisted(Counter)

    def test_a_restore_counts_the_journal_entries(self) -> None:
        for i in range(4):
            Persistent.objects.create(text=str(i))  # a snapshot, then 3 entries
        stored_entries = PersistentJournal.objects.using(SPOOL).filter(modelname="Persistent").count()
        assert stored_entries == 3
        self.database.tables.clear()
        snapshots = list(PersistentStorage.objects.using(SPOOL).filter(modelname="Persistent").defer("data"))
        assert not restore._load(self.database, {Persistent: snapshots}, SPOOL)
        state = self.database.tables[Persistent]
        assert (state.snapshot_rows, state.journal_rows, state.journal_entries) == (1, 3, 3)


# Real processes (tests.worker): the loads of other processes and the fast path.


def _generation(database: Scratch) -> int:
    connection = database._connect()
    try:
        cursor = connection.cursor()
        cursor.execute(f"SELECT generation FROM {SpoolLease._meta.db_table}")
        (generation,) = cursor.fetchone()
        cursor.close()
        return int(generation)
    finally:
        connection.close()


@pytest.mark.processes
def test_a_load_elsewhere_makes_the_owner_claim_and_its_copy_stale(scratch: Scratch) -> None:
    owner = Worker(scratch, "owner")
    owner.ask("write a1")
    held = _generation(scratch)
    owner.ask("write a2")
    owner.ask("write a3")
    assert _generation(scratch) == held  # appended without claiming

    loader = Worker(scratch, "loader")
    assert loader.ask("texts") == ["a1", "a2", "a3"]  # its load bumps the generation
    assert _generation(scratch) == held + 1
    # SQLite: the conditional append misses, the owner claims, which bumps. A server's
    # lock: plain INSERTs, the load is told by the journal's highest id (lease.py).
    bumps = 1 if scratch.kind == "sqlite" else 0
    owner.ask("write a4")
    assert _generation(scratch) == held + 1 + bumps
    owner.ask("write a5")
    assert _generation(scratch) == held + 1 + bumps  # held again
    owner.child.finish().check()

    stale = loader.ask("write b1", "error")
    assert "after this process loaded them" in stale
    loader.child.finish().check()
    assert [row["text"] for row in scratch.dump()["tests.Persistent"]] == ["a1", "a2", "a3", "a4", "a5"]


@pytest.mark.processes
def test_a_load_after_the_owners_last_write_takes_over(scratch: Scratch) -> None:
    owner = Worker(scratch, "owner")
    owner.ask("write a1")
    owner.ask("write a2")
    loader = Worker(scratch, "loader")
    assert loader.ask("texts") == ["a1", "a2"]
    owner.child.finish().check()  # nothing written after the load
    loader.ask("write b1")
    loader.child.finish().check()
    assert [row["text"] for row in scratch.dump()["tests.Persistent"]] == ["a1", "a2", "b1"]


@pytest.mark.processes
def test_of_two_loads_only_the_later_one_takes_over(scratch: Scratch) -> None:
    # Conservative: the first loader is refused although nothing was written.
    owner = Worker(scratch, "owner")
    owner.ask("write a1")
    first, second = Worker(scratch, "first"), Worker(scratch, "second")
    assert first.ask("texts") == ["a1"]
    assert second.ask("texts") == ["a1"]
    owner.child.finish().check()
    assert "after this process loaded them" in first.ask("write b1", "error")
    second.ask("write c1")
    first.child.finish().check()
    second.child.finish().check()
    assert [row["text"] for row in scratch.dump()["tests.Persistent"]] == ["a1", "c1"]


def test_held_needs_half_of_the_lease_left(settings: Any) -> None:
    settings.MEMDB_LEASE_SECONDS = 30.0

    class Database:
        lease_token = "token"
        lease_generation = 7
        lease_until: Any = None

    database: Any = Database()
    assert lease.held(database) is None
    database.lease_until = timezone.now() + datetime.timedelta(seconds=20)
    assert lease.held(database) == (conf.MEMDB_NAME, "token", 7)
    database.lease_until = timezone.now() + datetime.timedelta(seconds=10)
    assert lease.held(database) is None
    database.lease_until = timezone.now() + datetime.timedelta(seconds=20)
    database.lease_generation = lease.UNKNOWN
    assert lease.held(database) is None
