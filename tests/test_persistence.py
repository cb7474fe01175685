"""What is persisted is exactly what was committed in memory, by every write path."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable

import pytest
from django.db import IntegrityError, connections, transaction
from django.test import TestCase, TransactionTestCase, override_settings
from django.utils import timezone

from django_memdb.models import PersistentJournal, PersistentStorage
from tests.models import (
    Child,
    Counter,
    Ephemeral,
    Keyed,
    Other,
    Parent,
    Persistent,
    Rich,
    Tag,
    Tagged,
    Uuided,
)
from tests.storage_view import assert_persisted, in_memory, snapshot_count, stored

ALL = (Persistent, Other, Keyed, Uuided, Parent, Child, Tag, Tagged, Tagged.tags.through, Rich)


def _rich() -> Rich:
    return Rich.objects.create(
        char="ç", text="line\nbreak", integer=-3, big=2**60, floating=0.1, flag=True, maybe=None,
        when=timezone.now().replace(microsecond=123456), day=datetime.date(2024, 2, 29),
        clock=datetime.time(23, 59, 59, 999999), amount=decimal.Decimal("12.3400"),
        token=uuid.uuid4(), payload={"a": [1, 2, {"b": None}]}, blob=b"\x00\xff",
        duration=datetime.timedelta(days=1, microseconds=5), address="2001:db8::1",
    )


WRITES: dict[str, Callable[[], object]] = {
    "save": lambda: Persistent(text="saved").save(),
    "create": lambda: Persistent.objects.create(text="created"),
    "save_update": lambda: [p.save() for p in Persistent.objects.all() if setattr(p, "text", "x") is None],
    "delete": lambda: Persistent.objects.create(text="gone").delete(),
    "bulk_create": lambda: Persistent.objects.bulk_create([Persistent(text=f"b{i}") for i in range(50)]),
    "bulk_update": lambda: Persistent.objects.bulk_update(
        [Persistent(id=p.id, text="bu") for p in Persistent.objects.all()], ["text"]
    ),
    "queryset_update": lambda: Persistent.objects.filter(text__startswith="b").update(text="qu"),
    "queryset_delete": lambda: Persistent.objects.filter(text="qu").delete(),
    "get_or_create": lambda: Keyed.objects.get_or_create(key="g", defaults={"value": 1}),
    "update_or_create": lambda: Keyed.objects.update_or_create(key="g", defaults={"value": 2}),
    "char_pk_change": lambda: Keyed.objects.filter(key="g").update(key="h"),
    "uuid_pk": lambda: Uuided.objects.create(label="u"),
    "cascade": lambda: (
        Child.objects.create(parent=Parent.objects.create(name="p"), name="c"),
        Parent.objects.all().delete(),
    ),
    "m2m": lambda: Tagged.objects.create(name="t").tags.add(Tag.objects.create(name="x")),
    "m2m_remove": lambda: [t.tags.clear() for t in Tagged.objects.all()],
    "raw_sql": lambda: connections["django_memdb"].cursor().execute(
        "INSERT INTO tests_other (number) VALUES (%s)", [42]
    ),
    "raw_sql_delete": lambda: connections["django_memdb"].cursor().execute("DELETE FROM tests_other"),
    "rich": _rich,
}


class WritePathsTests(TransactionTestCase):
    """Each write path, with real commits."""

    databases = {"default", "django_memdb"}

    def test_every_write_path_is_persisted(self) -> None:
        for name, write in WRITES.items():
            with self.subTest(name):
                write()
                assert_persisted(*ALL)

    def test_rollback_is_never_persisted(self) -> None:
        Persistent.objects.create(text="kept")
        with pytest.raises(IntegrityError):
            with transaction.atomic(using="django_memdb"):
                Persistent.objects.create(text="rolled back")
                Other.objects.create(number=1)
                raise IntegrityError("abort")
        assert list(stored(Persistent).values()) == [{"text": "kept"}]
        assert snapshot_count(Other) == 0

    def test_savepoint_rollback_keeps_the_rest(self) -> None:
        with transaction.atomic(using="django_memdb"):
            Persistent.objects.create(text="outer")
            try:
                with transaction.atomic(using="django_memdb"):
                    Persistent.objects.create(text="inner")
                    raise ValueError
            except ValueError:
                pass
            assert stored(Persistent) == {}  # not before the commit
        assert [f["text"] for f in stored(Persistent).values()] == ["outer"]

    def test_commit_persists_all_tables_of_a_transaction(self) -> None:
        with transaction.atomic(using="django_memdb"):
            Persistent.objects.create(text="a")
            Other.objects.create(number=7)
        assert_persisted(Persistent, Other)

    def test_emptied_table_removes_only_its_rows(self) -> None:
        Persistent.objects.create(text="a")
        Other.objects.create(number=1)
        for i in range(3):
            Persistent.objects.create(text=str(i))  # journal entries too
        Persistent.objects.all().delete()
        assert snapshot_count(Persistent) == 0
        assert not PersistentJournal.objects.filter(modelname="Persistent").exists()
        assert snapshot_count(Other) == 1
        assert_persisted(Other)

    def test_non_persistent_models_are_never_stored(self) -> None:
        Ephemeral.objects.create(text="x")
        assert not PersistentStorage.objects.exists()
        assert not PersistentJournal.objects.exists()

    @override_settings(MEMDB_COMPACT_MIN_ROWS=5)
    def test_journal_is_compacted_into_the_one_snapshot(self) -> None:
        for i in range(40):
            Counter.objects.create(name=str(i))
        assert snapshot_count(Counter) == 1
        assert PersistentJournal.objects.filter(modelname="Counter").count() <= 20
        assert PersistentStorage.objects.get(modelname="Counter").rows >= 20
        assert_persisted(Counter)

    def test_write_inside_a_default_transaction_waits_for_its_commit(self) -> None:
        with transaction.atomic():
            Persistent.objects.create(text="a")
            assert stored(Persistent) == {}
        assert_persisted(Persistent)

    def test_write_inside_a_rolled_back_default_transaction_is_persisted_later(self) -> None:
        with pytest.raises(ValueError):
            with transaction.atomic():
                Persistent.objects.create(text="committed in memory")
                raise ValueError
        assert in_memory(Persistent)  # the in-memory write was committed
        Other.objects.create(number=1)  # the next write flushes what is pending
        assert_persisted(Persistent, Other)


class TestCaseSemanticsTests(TestCase):
    """In a TestCase, writes outside the test's own atomic blocks count as committed."""

    databases = {"default", "django_memdb"}

    def test_write_outside_atomic_is_persisted_at_once(self) -> None:
        Persistent.objects.bulk_create([Persistent(text="a"), Persistent(text="b")])
        assert_persisted(Persistent)

    def test_own_atomic_block_is_persisted_when_it_exits(self) -> None:
        with transaction.atomic(using="django_memdb"):
            Persistent.objects.create(text="a")
            Other.objects.create(number=2)
            assert stored(Persistent) == {}
        assert_persisted(Persistent, Other)

    def test_own_rolled_back_block_is_not_persisted(self) -> None:
        with pytest.raises(ValueError):
            with transaction.atomic(using="django_memdb"):
                Persistent.objects.create(text="a")
                raise ValueError
        assert stored(Persistent) == {}
        assert not PersistentStorage.objects.exists()

    def test_every_write_path_is_persisted(self) -> None:
        for name, write in WRITES.items():
            with self.subTest(name):
                write()
                assert_persisted(*ALL)
