"""Bad input gets a clear error naming the model and the way out, and loses nothing."""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, connections

from django_memdb import lifecycle, signals, spool
from django_memdb.exceptions import PersistenceError, ProcessorError, RestoreError
from django_memdb.models import PersistentJournal, PersistentStorage
from django_memdb.tools.restore import restore
from tests.models import Other, Persistent
from tests.storage_view import assert_persisted, in_memory

pytestmark = pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)


def zlib_processor(arguments: dict[str, Any]) -> None:
    if arguments["process"] == "encode":
        arguments["data"] = zlib.compress(json.dumps(arguments["data"]).encode())
    else:
        arguments["data"] = json.loads(zlib.decompress(arguments["data"]))


class Zlib:
    def process(self, arguments: dict[str, Any]) -> None:
        zlib_processor(arguments)

    def __call__(self, arguments: dict[str, Any]) -> None:
        zlib_processor(arguments)


def raising_processor(arguments: dict[str, Any]) -> None:
    raise RuntimeError("boom")


def int_processor(arguments: dict[str, Any]) -> None:
    arguments["data"] = 42


def connect(processor: Any, *signal_list: Any) -> Iterator[None]:
    def receiver(sender: Any, **kwargs: Any) -> None:
        kwargs["kwargs"]["processors"].append(processor)

    for signal in signal_list:
        signal.connect(receiver, weak=False, dispatch_uid="test_errors")
    try:
        yield
    finally:
        for signal in signal_list:
            signal.disconnect(dispatch_uid="test_errors")


@pytest.fixture(autouse=True)
def _unblock_tables() -> Iterator[None]:
    yield
    lifecycle.current_database().failed.clear()


@pytest.fixture
def zlib_chain() -> Iterator[None]:
    yield from connect(zlib_processor, signals.store_save, signals.store_load)


@pytest.mark.parametrize(
    ("processor", "message"),
    [(raising_processor, "raised RuntimeError('boom')"), (int_processor, "returned int")],
)
def test_failing_processor_names_model_and_keeps_the_change(processor: Any, message: str) -> None:
    Persistent.objects.create(text="before")
    for _ in connect(processor, signals.store_save):
        with pytest.raises(PersistenceError) as caught:
            Persistent.objects.create(text="during")
        assert message in str(caught.value)
        assert "tests.Persistent" in str(caught.value)
        assert isinstance(caught.value.__cause__, ProcessorError)
        assert in_memory(Persistent)  # committed in memory
        assert lifecycle.current_database().pending_error is caught.value
    # Once the processor is gone, the pending change is stored with the next flush.
    assert spool.flush(lifecycle.current_database()) == 1
    assert_persisted(Persistent)


def test_a_processor_that_cannot_be_imported_by_its_name_is_refused() -> None:
    def compress(arguments: dict[str, Any]) -> None:  # not importable: inside a function
        arguments["data"] = zlib.compress(json.dumps(arguments["data"]).encode())

    Persistent.objects.create(text="before")
    stored = [(s.codec, bytes(s.data)) for s in PersistentStorage.objects.all()]
    for _ in connect(compress, signals.store_save):
        with pytest.raises(PersistenceError) as caught:
            Persistent.objects.create(text="during")
        cause = caught.value.__cause__
        assert isinstance(cause, ProcessorError)
        assert str(cause).startswith("tests.Persistent: the store_save processor ")
        assert "test_a_processor_that_cannot_be_imported_by_its_name_is_refused.<locals>.compress" in str(cause)
        assert "define it at module level" in str(cause)
    assert [(s.codec, bytes(s.data)) for s in PersistentStorage.objects.all()] == stored
    assert not PersistentJournal.objects.exists()
    assert spool.flush(lifecycle.current_database()) == 1  # the change was kept pending
    assert_persisted(Persistent)


@pytest.mark.parametrize(
    ("processor", "codec"),
    [
        (functools.partial(zlib_processor), "tests.test_errors.zlib_processor"),
        (Zlib().process, "tests.test_errors.Zlib.process"),
        (Zlib(), "tests.test_errors.Zlib"),
    ],
)
def test_importable_processors_are_recorded_by_dotted_name(processor: Any, codec: str) -> None:
    for _ in connect(processor, signals.store_save, signals.store_load):
        Persistent.objects.create(text="a")
        assert PersistentStorage.objects.get().codec == codec
        restore()
        assert list(Persistent.objects.values_list("text", flat=True)) == ["a"]


def test_corrupt_blob_is_reported_kept_and_blocks_the_table() -> None:
    pk = Persistent.objects.create(text="a").pk
    PersistentStorage.objects.filter(modelname="Persistent").update(data=b"\x00 not json")
    corrupt = list(PersistentStorage.objects.all())
    with pytest.raises(RestoreError) as caught:
        restore(corrupt)
    text = str(caught.value)
    assert "tests.Persistent" in text and "memdb_restore --model tests.Persistent" in text
    assert bytes(PersistentStorage.objects.get().data) == b"\x00 not json"  # kept, untouched
    with pytest.raises(RestoreError):
        Persistent.objects.count()  # blocked until restored
    Other.objects.create(number=1)  # other tables keep working
    PersistentStorage.objects.filter(modelname="Persistent").update(
        data=json.dumps([{"model": "tests.persistent", "pk": pk, "fields": {"text": "a"}}]).encode()
    )
    restore()
    assert list(Persistent.objects.values_list("text", flat=True)) == ["a"]


def test_blob_of_disconnected_processors_says_which(zlib_chain: None) -> None:
    Persistent.objects.create(text="a")
    row = PersistentStorage.objects.get()
    assert row.codec == "tests.test_errors.zlib_processor"
    signals.store_load.disconnect(dispatch_uid="test_errors")
    with pytest.raises(RestoreError) as caught:
        restore([row])
    assert "[tests.test_errors.zlib_processor]" in str(caught.value)
    assert "now connected is [none]" in str(caught.value)
    assert bytes(PersistentStorage.objects.get().data) == bytes(row.data)


def test_zlib_chain_round_trips(zlib_chain: None) -> None:
    Persistent.objects.create(text="a")
    Persistent.objects.create(text="b")  # journaled through the chain too
    entry = PersistentJournal.objects.get()
    assert json.loads(zlib.decompress(bytes(entry.data)))[0]["fields"] == {"text": "b"}
    assert_persisted(Persistent)


def test_rows_of_a_model_that_no_longer_exists_are_kept() -> None:
    PersistentStorage.objects.create(application="gone", modelname="Missing", codec="", data=b"[]")
    with pytest.raises(RestoreError) as caught:
        restore()
    assert "gone.Missing is no persistent model" in str(caught.value)
    assert PersistentStorage.objects.filter(application="gone").exists()


def test_missing_storage_tables_say_run_migrate() -> None:
    Persistent.objects.create(text="a")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_memdb_persistentjournal RENAME TO memdb_moved")
    try:
        with pytest.raises(PersistenceError) as caught:
            Persistent.objects.create(text="b")
        assert "Run `python manage.py migrate`" in str(caught.value)
        assert "tests.Persistent" in str(caught.value)  # the model whose changes wait
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE memdb_moved RENAME TO django_memdb_persistentjournal")
    spool.flush(lifecycle.current_database())
    assert_persisted(Persistent)


def test_cross_database_reads_work_without_constraint() -> None:
    from tests.models import Note, Plain

    plain = Plain.objects.create(text="on default")
    note = Note.objects.create(plain=plain, text="in memory")
    fresh = Note.objects.get(pk=note.pk)
    assert fresh._state.db == "django_memdb"
    assert fresh.plain.text == "on default"
    assert fresh.plain._state.db == "default"
    assert list(plain.note_set.values_list("text", flat=True)) == ["in memory"]
    assert connections["django_memdb"].vendor == "sqlite"
