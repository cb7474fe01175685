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
    text = str(caught.value)
    assert "Chain recorded in storage for this data: [tests.test_errors.zlib_processor]; " in text
    assert "store_load chain connected now: none. Nothing is connected to decode it." in text
    assert "Written with chain [tests.test_errors.zlib_processor]: the snapshot of 1 row." in text
    assert "Way out: connect store_load processors that decode every chain above" in text
    assert "`manage.py memdb_spool --rewrite --model tests.Persistent`" in text
    assert bytes(PersistentStorage.objects.get().data) == bytes(row.data)


def zlib_decoder(arguments: dict[str, Any]) -> None:
    arguments["data"] = json.loads(zlib.decompress(arguments["data"]))


def _restore_error() -> str:
    with pytest.raises(RestoreError) as caught:
        restore()
    return str(caught.value)


def test_a_processor_added_to_stored_data_names_both_chains_and_what_each_wrote() -> None:
    Persistent.objects.create(text="a")
    Persistent.objects.create(text="b")
    Persistent.objects.create(text="c")  # a snapshot of 1 row, 2 journal entries
    for _ in connect(zlib_decoder, signals.store_load):
        text = _restore_error()
    assert text.startswith("Cannot restore tests.Persistent: Error -3 while decompressing data")
    assert "Chain recorded in storage for this data: none; " in text
    assert "store_load chain connected now: [tests.test_errors.zlib_decoder]. " in text
    assert "It was stored without processors, and the connected ones are given JSON they did not encode." in text
    assert "Written with no processors: the snapshot of 1 row and 2 journal entries of 2 rows." in text
    assert "The stored rows were kept." in text


def test_a_processor_that_raises_on_load_is_named_as_connected(zlib_chain: None) -> None:
    Persistent.objects.create(text="a")
    signals.store_load.disconnect(dispatch_uid="test_errors")
    for _ in connect(raising_processor, signals.store_load):  # in place of zlib_processor
        text = _restore_error()
    assert "Chain recorded in storage for this data: [tests.test_errors.zlib_processor]; " in text
    assert "store_load chain connected now: [tests.test_errors.raising_processor]. " in text
    assert "Unless the connected processors decode what the recorded ones encoded, the processors changed." in text


def test_data_of_two_chains_is_listed_per_chain(zlib_chain: None) -> None:
    Persistent.objects.create(text="a")  # snapshot through zlib
    signals.store_save.disconnect(dispatch_uid="test_errors")
    Persistent.objects.create(text="b")  # journal entry without processors
    text = _restore_error()
    assert (
        "Written with chain [tests.test_errors.zlib_processor]: the snapshot of 1 row. "
        "Written with no processors: 1 journal entry of 1 row."
    ) in text


def test_a_blob_that_the_recorded_chain_cannot_decode_may_be_corrupt(zlib_chain: None) -> None:
    Persistent.objects.create(text="a")
    PersistentStorage.objects.update(data=zlib.compress(b"\x00 not json"))
    text = _restore_error()
    assert "store_load chain connected now: [tests.test_errors.zlib_processor]. The two are the same: " in text
    assert "the blob may be corrupt (fix or delete it in the admin" in text


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
