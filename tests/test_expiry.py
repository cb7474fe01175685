"""Expiring and bounded in-memory tables: every write path, restarts, host and cluster mode.

Time is moved with a settable clock (django_memdb.expiry.clock) in this
process; the process tests use rows that expire a second after they are
written and poll with a generous deadline.
"""

from __future__ import annotations

import datetime
import gc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.db import connections, models, transaction
from django.db.models.signals import post_delete
from django.test import TransactionTestCase
from django.test.utils import isolate_apps
from django.utils import timezone

from django_memdb import checks, expiry, pacing
from django_memdb.expiry import Expiry
from django_memdb.mixins import InMemoryDB
from tests.expiry_app.models import Deadline, Grant, GrantUse, Latest, MappedGrant, Recent, Token
from tests.processes import KILLED, Scratch
from tests.servers import Worker
from tests.storage_view import in_memory, stored

MEMORY = "django_memdb"


class Clock:
    """The time django_memdb.expiry sees: real time plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = datetime.timedelta()

    def __call__(self) -> datetime.datetime:
        return timezone.now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += datetime.timedelta(seconds=seconds)


class ExpiryTestCase(TransactionTestCase):
    databases = {"default", MEMORY}

    def setUp(self) -> None:
        self.clock = Clock()
        original = expiry.clock
        expiry.clock = self.clock
        expiry.forget_purges()
        self.addCleanup(setattr, expiry, "clock", original)
        self.addCleanup(expiry.forget_purges)


def _raw(sql: str, params: list[Any] | None = None) -> None:
    with connections[MEMORY].cursor() as cursor:
        cursor.execute(sql, params or [])


def _old() -> datetime.datetime:
    return timezone.now() - datetime.timedelta(hours=2)


# How a row gets written; each also counts as a write that purges.
EXPIRING_WRITES: dict[str, Callable[[str], object]] = {
    "create": lambda text: Token.objects.create(text=text),
    "save": lambda text: Token(text=text).save(),
    "bulk_create": lambda text: Token.objects.bulk_create([Token(text=text)]),
    "get_or_create": lambda text: Token.objects.get_or_create(text=text),
    "raw_sql": lambda text: _raw(
        'INSERT INTO "expiry_app_token" (text, created) VALUES (%s, %s)', [text, timezone.now()]
    ),
}


class ExpiryTests(ExpiryTestCase):
    def test_expired_rows_are_never_read_and_are_deleted_as_journaled(self) -> None:
        for name, write in EXPIRING_WRITES.items():
            write(name)
        assert Token.objects.count() == len(EXPIRING_WRITES)

        self.clock.advance(3601)
        assert list(Token.objects.all()) == []
        # Deleted, not hidden; and the deletion is stored, so a restart does not bring them back.
        assert in_memory(Token) == {}
        assert stored(Token) == {}

    def test_the_identity_map_never_hands_out_an_expired_row(self) -> None:
        grant = MappedGrant.objects.create(text="mapped")
        held = MappedGrant.objects.get(pk=grant.pk)  # weak references: held, so it stays mapped
        assert MappedGrant.objects.get(pk=grant.pk) is held
        self.clock.advance(61)
        # Every fast path of the map purges first, as the router does for the ORM.
        with pytest.raises(MappedGrant.DoesNotExist):
            MappedGrant.objects.get(pk=grant.pk)
        assert MappedGrant.objects.filter(pk=grant.pk).first() is None
        assert MappedGrant.objects.in_bulk([grant.pk]) == {}
        assert in_memory(MappedGrant) == {}

    def test_rows_not_yet_expired_stay(self) -> None:
        Token.objects.create(text="old")
        self.clock.advance(1800)
        Token.objects.create(text="new", created=self.clock())
        self.clock.advance(1801)
        assert list(Token.objects.values_list("text", flat=True)) == ["new"]

    def test_each_orm_write_path_purges_before_it_writes(self) -> None:
        # Raw SQL is not routed: the rows it writes expire like any (see above), and the
        # next ORM read or the purger thread removes them.
        for name, write in EXPIRING_WRITES.items():
            if name == "raw_sql":
                continue
            with self.subTest(name):
                # Expired already (moving the clock would make the written row expired too).
                _raw('INSERT INTO "expiry_app_token" (text, created) VALUES (%s, %s)', [f"{name} expires", _old()])
                write(f"{name} written")  # the write, not a read, removes the expired row
                assert sorted(fields["text"] for fields in in_memory(Token).values()) == [f"{name} written"]
                _raw('DELETE FROM "expiry_app_token"')

    def test_update_and_delete_purge_too(self) -> None:
        Token.objects.create(text="a")
        self.clock.advance(3601)
        assert Token.objects.filter(text="a").update(text="b") == 0
        assert in_memory(Token) == {}

    def test_per_row_expiry_column(self) -> None:
        now = timezone.now()
        Deadline.objects.create(text="past", expires_at=now - datetime.timedelta(seconds=1))
        Deadline.objects.create(text="soon", expires_at=now + datetime.timedelta(seconds=60))
        Deadline.objects.create(text="never", expires_at=None)
        self.clock.advance(1)  # written already expired: never read
        assert sorted(Deadline.objects.values_list("text", flat=True)) == ["never", "soon"]

        self.clock.advance(60)
        assert list(Deadline.objects.values_list("text", flat=True)) == ["never"]
        assert [fields["text"] for fields in stored(Deadline).values()] == ["never"]

    def test_rows_written_already_expired_are_never_read(self) -> None:
        _raw('INSERT INTO "expiry_app_token" (text, created) VALUES (%s, %s)', ["raw", _old()])
        Token.objects.bulk_create([Token(text="bulk", created=_old())])
        assert Token.objects.count() == 0  # at once, not after MEMDB_EXPIRY_INTERVAL

    def test_no_window_a_row_expired_a_moment_ago_is_not_read(self) -> None:
        Token.objects.create(text="a")
        assert Token.objects.count() == 1  # purged just now
        # Expired behind the ORM's back right after that purge: the next read does not return it.
        _raw('UPDATE "expiry_app_token" SET created = %s', [_old()])
        assert Token.objects.count() == 0
        assert in_memory(Token) == {}

    def test_the_map_does_not_wait_for_the_purge_interval_either(self) -> None:
        grant = MappedGrant.objects.create(text="mapped")
        held = MappedGrant.objects.get(pk=grant.pk)
        _raw('UPDATE "expiry_app_mappedgrant" SET created = %s', [_old()])
        with pytest.raises(MappedGrant.DoesNotExist):
            MappedGrant.objects.get(pk=held.pk)

    def test_a_purge_in_a_rolled_back_transaction_is_done_again(self) -> None:
        Token.objects.create(text="a")
        self.clock.advance(3601)
        with pytest.raises(RuntimeError), transaction.atomic(using=MEMORY):
            assert Token.objects.count() == 0
            assert Token.objects.count() == 0  # found nothing expired: not remembered past the rollback
            raise RuntimeError("rolled back, with the purge")
        assert len(in_memory(Token)) == 1
        assert Token.objects.count() == 0

    def test_purge_is_a_queryset_delete_with_cascades_and_signals(self) -> None:
        deleted: list[str] = []

        def receiver(sender: Any, instance: Any, **kwargs: Any) -> None:
            deleted.append(f"{sender.__name__} {getattr(instance, 'text', '')}".strip())

        post_delete.connect(receiver, weak=False)
        self.addCleanup(post_delete.disconnect, receiver)
        grant = Grant.objects.create(text="g")
        GrantUse.objects.create(grant=grant)
        self.clock.advance(61)
        assert Grant.objects.count() == 0
        assert GrantUse.objects.count() == 0
        assert sorted(deleted) == ["Grant g", "GrantUse"]

    def test_a_large_purge_runs_in_batches(self) -> None:
        Token.objects.bulk_create([Token(text=str(number)) for number in range(25)])
        self.clock.advance(3601)
        with expiry._purge_lock(Token):  # as before_use: the process's purger thread waits
            assert expiry.purge(Token, batch=4) == 25
        assert in_memory(Token) == {} and stored(Token) == {}


def _insert_expired(model: type[models.Model], count: int) -> None:
    """Rows expired already, written without the router (whose purge would delete them at once)."""
    table = connections[MEMORY].ops.quote_name(model._meta.db_table)
    with connections[MEMORY].cursor() as cursor:
        rows = [[str(number), _old()] for number in range(count)]
        cursor.executemany(f"INSERT INTO {table} (text, created) VALUES (%s, %s)", rows)


class SlicedPurgeTests(ExpiryTestCase):
    def test_other_threads_read_and_write_between_the_slices_of_a_long_purge(self) -> None:
        # The lock of before_use, held throughout: the process's purger thread waits instead of purging too.
        purge_lock = expiry._purge_lock(Grant)
        purge_lock.acquire()
        self.addCleanup(purge_lock.release)
        _insert_expired(Grant, 300)
        Latest.objects.create(text="another table")
        between, resume = threading.Event(), threading.Event()
        slices: list[float] = []
        pause_after = pacing.pause_after

        def pause_after_the_fifth(held: float) -> None:
            pause_after(held)
            slices.append(held)
            if len(slices) == 5:
                between.set()  # between two slices: the purge holds no lock now
                resume.wait(60)

        def purge() -> None:
            with mock.patch.object(pacing, "pause_after", pause_after_the_fifth):
                purged.append(expiry.purge(Grant, batch=10))
            connections.close_all()

        def other_request() -> None:
            Latest.objects.filter(text="another table").exists()
            Latest.objects.create(text="written meanwhile")
            connections.close_all()

        purged: list[int] = []
        purging = threading.Thread(target=purge)
        purging.start()
        assert between.wait(60)
        request = threading.Thread(target=other_request)
        request.start()
        request.join(60)
        # Neither waited for the rest of the purge (it would never end: the purge waits for them).
        assert not request.is_alive() and 0 < len(in_memory(Grant)) < 300
        resume.set()
        purging.join(60)
        assert purged == [300] and in_memory(Grant) == {} and len(slices) == 30

    def test_a_read_during_a_purge_of_its_own_model_waits_for_it_and_sees_no_expired_row(self) -> None:
        _insert_expired(Grant, 500)
        results: list[list[str]] = []

        def read() -> None:
            results.append(list(Grant.objects.values_list("text", flat=True)))
            connections.close_all()

        threads = [threading.Thread(target=read) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [[]] * 4 and in_memory(Grant) == {}

    def test_the_slice_size_follows_the_time_per_row(self) -> None:
        pacer = pacing.Pacer(seconds=0.010, first=50, largest=5000)
        pacer.measured(50, 0.001)  # 20 µs a row: 500 fit, but it grows twofold at most
        assert pacer.size == 100
        pacer.measured(100, 0.100)  # the machine slowed down: 1 ms a row (smoothed with the first)
        assert pacer.size == int(0.010 / (0.5 * (0.001 / 50 + 0.100 / 100)))
        for _ in range(50):
            pacer.measured(pacer.size, pacer.size * 1e-7)  # very cheap rows
        assert pacer.size == 5000  # never more than the largest
        pacer.measured(0, 1.0)  # an empty slice tells nothing
        assert pacer.size == 5000

    def test_the_fixed_cost_of_a_slice_leaves_less_time_for_rows_but_never_less_than_half(self) -> None:
        pacer = pacing.Pacer(seconds=0.010, first=100, largest=5000)
        pacer.measured(100, 0.004, held=0.010)  # 40 µs a row, and 6 ms of commit (smoothed: 3 ms)
        assert pacer.size == int(0.007 / 0.00004)
        for _ in range(20):
            pacer.measured(pacer.size, pacer.size * 0.00004, held=pacer.size * 0.00004 + 0.050)
        assert pacer.size == int(0.005 / 0.00004)  # a 50 ms commit: half the slice for rows still


class BoundTests(ExpiryTestCase):
    def _texts(self) -> list[str]:
        return [fields["text"] for _, fields in sorted(in_memory(Latest).items())]

    def test_every_write_path_keeps_the_bound_oldest_first(self) -> None:
        writes: dict[str, Callable[[], object]] = {
            "create": lambda: [Latest.objects.create(text=f"c{n}") for n in range(7)],
            "save": lambda: [Latest(text=f"s{n}").save() for n in range(7)],
            "bulk_create": lambda: Latest.objects.bulk_create([Latest(text=f"b{n}") for n in range(12)]),
            "raw_sql": lambda: _raw(
                'INSERT INTO "expiry_app_latest" (text) VALUES ' + ", ".join(["(%s)"] * 9),
                [f"r{n}" for n in range(9)],
            ),
            "atomic": lambda: _in_atomic(lambda: [Latest.objects.create(text=f"a{n}") for n in range(8)]),
        }
        for name, write in writes.items():
            with self.subTest(name):
                write()
                texts = self._texts()
                assert len(texts) == 5
                assert texts == sorted(texts, key=lambda text: int(text[1:]))[-5:]
                assert {text[0] for text in texts} == {name[0]}
                # Evictions are deletes, journaled like any other.
                assert sorted(fields["text"] for fields in stored(Latest).values()) == sorted(texts)

    def test_update_never_evicts(self) -> None:
        for number in range(5):
            Latest.objects.create(text=str(number))
        assert Latest.objects.update(text="same") == 5
        assert Latest.objects.count() == 5

    def test_least_recently_used_is_evicted(self) -> None:
        rows = [Recent.objects.create(text=str(number)) for number in range(5)]
        Recent.objects.get(pk=rows[0].pk)  # used: now the most recent
        list(Recent.objects.filter(pk=rows[1].pk))
        Recent.objects.create(text="5")
        Recent.objects.create(text="6")
        assert sorted(Recent.objects.values_list("text", flat=True)) == ["0", "1", "4", "5", "6"]

    def test_least_recently_used_bound_holds_for_raw_sql(self) -> None:
        _raw('INSERT INTO "expiry_app_recent" (text) VALUES ' + ", ".join(["(%s)"] * 8), [str(n) for n in range(8)])
        assert sorted(Recent.objects.values_list("text", flat=True)) == ["3", "4", "5", "6", "7"]


def _in_atomic(write: Callable[[], object]) -> None:
    with transaction.atomic(using=MEMORY):
        write()


# Real processes: restarts and host mode.

DEADLINE = {"MEMDB_TEST_WORKER_MODEL": "expiry_app.Deadline"}
NO_ACTIVE_PURGE = {"MEMDB_TEST_EXPIRY_INTERVAL": "3600"}  # reads by raw SQL then see what was restored


def _expiring(text: str, seconds: float) -> str:
    at = timezone.now() + datetime.timedelta(seconds=seconds)
    return f'create {{"text": "{text}", "expires_at": "{at.isoformat()}"}}'


def _until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within the (generous) deadline"
        time.sleep(0.1)


def _sleep_past(moment: datetime.datetime) -> None:
    while timezone.now() <= moment:
        time.sleep(0.05)


@pytest.mark.processes
def test_expired_rows_stay_deleted_after_sigkill_and_restart(scratch: Scratch) -> None:
    first = Worker(scratch, "first", **DEADLINE)
    first.ask(_expiring("expires", 1))
    first.ask(_expiring("also expires", 1))
    first.ask('create {"text": "stays"}')
    _until(lambda: first.ask("count") == 1)  # purged by a read or by the purger thread
    first.child.popen.kill()
    assert first.child.wait().returncode == KILLED

    restarted = Worker(scratch, "restarted", **DEADLINE, **NO_ACTIVE_PURGE)
    assert restarted.ask("raw-count") == 1  # what storage restored: the deletions were journaled
    assert restarted.ask("texts") == ["stays"]


@pytest.mark.processes
def test_rows_that_expired_while_down_are_gone_before_the_first_read(scratch: Scratch) -> None:
    first = Worker(scratch, "first", **DEADLINE)
    first.ask(_expiring("expires", 1))
    first.ask('create {"text": "stays"}')
    written = timezone.now()
    first.child.popen.kill()
    assert first.child.wait().returncode == KILLED
    _sleep_past(written + datetime.timedelta(seconds=1.5))

    restarted = Worker(scratch, "restarted", **DEADLINE, **NO_ACTIVE_PURGE)
    assert restarted.ask("texts") == ["stays"]  # its first read
    restarted.child.popen.kill()
    restarted.child.wait()
    again = Worker(scratch, "again", **DEADLINE, **NO_ACTIVE_PURGE)
    assert again.ask("raw-count") == 1  # that purge was journaled too


@pytest.mark.processes
def test_host_mode_processes_share_expiry_and_bound(scratch: Scratch, tmp_path: Path) -> None:
    host = {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path)}
    latest = {"MEMDB_TEST_WORKER_MODEL": "expiry_app.Latest"}
    one, two = Worker(scratch, "one", **host, **latest), Worker(scratch, "two", **host, **latest)
    for number in range(12):
        (one if number % 2 else two).ask(f"write {number}")
    expected = [str(number) for number in range(7, 12)]
    assert one.ask("texts") == expected and two.ask("texts") == expected

    writer, reader = Worker(scratch, "writer", **host, **DEADLINE), Worker(scratch, "reader", **host, **DEADLINE)
    writer.ask(_expiring("expires", 1))
    writer.ask('create {"text": "stays"}')
    assert reader.ask("raw-count") == 2
    _until(lambda: reader.ask("texts") == ["stays"])
    assert writer.ask("raw-count") == 1  # deleted from the shared file, not hidden from one process


@pytest.mark.processes
def test_host_mode_a_row_another_process_wrote_expired_is_never_read(scratch: Scratch, tmp_path: Path) -> None:
    host = {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path), **DEADLINE, **NO_ACTIVE_PURGE}
    writer, reader = Worker(scratch, "writer", **host), Worker(scratch, "reader", **host)
    writer.ask('create {"text": "stays"}')
    assert reader.ask("texts") == ["stays"]  # the reader found nothing expired, and remembers it
    writer.ask(_expiring("written expired", -60))  # by another process: the reader's connection did not change it
    assert reader.ask("raw-count") == 2
    assert reader.ask("texts") == ["stays"]
    assert writer.ask("raw-count") == 1


# System checks


def _ids(errors: list[Any]) -> list[str]:
    return [error.id for error in errors]


@pytest.fixture(autouse=True)
def _forget_isolated_models() -> None:
    gc.collect()  # models of isolate_apps blocks of earlier tests are still subclasses of Model


def test_the_test_project_declares_expiry_and_bounds_cleanly() -> None:
    assert checks.check_expiry_and_bounds() == []


@pytest.mark.parametrize(
    "declaration",
    [
        {"memdb_expiry": 3600},
        {"memdb_expiry": Expiry(ttl=60)},
        {"memdb_expiry": Expiry(ttl=0, field="created")},
        {"memdb_expiry": Expiry(ttl="1h", field="created")},
        {"memdb_expiry": Expiry(ttl=60, field="missing")},
        {"memdb_expiry": Expiry(ttl=60, field="text")},
    ],
)
def test_e013_expiry_declaration(declaration: dict[str, Any]) -> None:
    with isolate_apps("tests"):
        attrs = {
            "__module__": "tests.models", "text": models.CharField(max_length=10),
            "created": models.DateTimeField(db_index=True), **declaration,
        }
        model = type("Broken", (models.Model, InMemoryDB), attrs)
        errors = checks.check_expiry_and_bounds()
    [error] = [e for e in errors if e.obj is model]
    assert error.id == "django_memdb.E013"
    assert "tests.Broken" in error.msg and "Expiry(" in error.hint


def test_e013_expiry_on_a_model_that_is_not_in_memory() -> None:
    with isolate_apps("tests"):
        model = type("Plain", (models.Model,), {
            "__module__": "tests.models", "created": models.DateTimeField(db_index=True),
            "memdb_expiry": Expiry(ttl=60, field="created"),
        })
        errors = [e for e in checks.check_expiry_and_bounds() if e.obj is model]
    assert _ids(errors) == ["django_memdb.E013"] and "not in memory" in errors[0].msg


def test_w002_expiry_field_without_index() -> None:
    with isolate_apps("tests"):
        model = type("Unindexed", (models.Model, InMemoryDB), {
            "__module__": "tests.models", "created": models.DateTimeField(),
            "memdb_expiry": Expiry(ttl=60, field="created"),
        })
        errors = [e for e in checks.check_expiry_and_bounds() if e.obj is model]
    assert _ids(errors) == ["django_memdb.W002"]


@pytest.mark.parametrize(
    "declaration",
    [{"memdb_max_rows": 0}, {"memdb_max_rows": "10"}, {"memdb_max_rows": True},
     {"memdb_max_rows": 10, "memdb_eviction": "random"}, {"memdb_eviction": "lru"}],
)
def test_e014_bound_declaration(declaration: dict[str, Any]) -> None:
    with isolate_apps("tests"):
        model = type("Unbound", (models.Model, InMemoryDB), {"__module__": "tests.models", **declaration})
        errors = [e for e in checks.check_expiry_and_bounds() if e.obj is model]
    assert _ids(errors) == ["django_memdb.E014"] and "memdb_max_rows" in errors[0].hint


def test_e015_database_foreign_key_to_a_bounded_model() -> None:
    with isolate_apps("tests"):
        bounded = type("Bounded", (models.Model, InMemoryDB), {"__module__": "tests.models", "memdb_max_rows": 3})
        type("Pointing", (models.Model, InMemoryDB), {
            "__module__": "tests.models", "to": models.ForeignKey(bounded, on_delete=models.CASCADE),
        })
        type("Loose", (models.Model, InMemoryDB), {
            "__module__": "tests.models",
            "to": models.ForeignKey(bounded, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"),
        })
        errors = [e for e in checks.check_expiry_and_bounds() if e.obj is bounded]
    assert _ids(errors) == ["django_memdb.E015"]
    assert "tests.Pointing.to" in errors[0].msg and "db_constraint=False" in errors[0].hint


def test_e016_bounds_in_cluster_mode(settings: Any) -> None:
    settings.MEMDB_MODE = "cluster"
    errors = checks.check_expiry_and_bounds()
    assert [e.obj for e in errors if e.obj in (Latest, Recent, Token)] == [Latest, Recent]
    assert {e.id for e in errors if e.obj in (Latest, Recent)} == {"django_memdb.E016"}


@pytest.mark.parametrize("value", [0, -1, "1", None, float("nan")])
def test_e017_expiry_interval(settings: Any, value: Any) -> None:
    settings.MEMDB_EXPIRY_INTERVAL = value
    assert _ids([e for e in checks.check_expiry_and_bounds() if e.obj is None]) == ["django_memdb.E017"]


def test_the_purge_thread_logs_a_repeated_failure_once(caplog: pytest.LogCaptureFixture, settings: Any) -> None:
    """Outside a database test pytest-django refuses every query: the thread's failure repeats each interval."""
    settings.MEMDB_EXPIRY_INTERVAL = 0.02
    stop = expiry._stop
    expiry._stop = threading.Event()  # this loop's own, so that the process's purger runs on
    thread = threading.Thread(target=expiry._purge_loop, daemon=True)
    with caplog.at_level(logging.DEBUG, logger="django_memdb"):
        thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum("purge of" in r.message for r in caplog.records) < 20:
            time.sleep(0.02)
        expiry._stop.set()
        thread.join(10)
    expiry._stop = stop
    failures = [r for r in caplog.records if "purge of" in r.message and "failed" in r.message]
    assert len(failures) >= 2 * len(expiry.expiring_models())  # it did fail again and again
    warnings = [r for r in failures if r.levelno == logging.WARNING]
    assert len(warnings) == len(expiry.expiring_models())  # once per model, the repeats at debug level


@pytest.mark.parametrize("value", [0, -1, "1", None, float("nan")])
def test_the_purge_thread_waits_the_default_on_an_interval_check_e017_refuses(settings: Any, value: Any) -> None:
    # Set while the thread runs: it must neither die nor spin.
    settings.MEMDB_EXPIRY_INTERVAL = value
    assert expiry._interval() == expiry.DEFAULT_INTERVAL
    settings.MEMDB_EXPIRY_INTERVAL = 0.25
    assert expiry._interval() == 0.25
