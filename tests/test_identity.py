"""The identity map: one instance per row, and every read it serves is what the ORM would return."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections, models, transaction
from django.test.utils import CaptureQueriesContext, isolate_apps

from django_memdb import identity
from django_memdb.checks import identity_map_errors
from django_memdb.mixins import IdentityMapped
from django_memdb.signals import post_flush, pre_flush
from django_memdb.tools import restore
from tests.models import City, Country, Currency
from tests.processes import Scratch
from tests.servers import Worker

MEMORY = "django_memdb"
pytestmark = pytest.mark.django_db(databases=["default", MEMORY], transaction=True)


@pytest.fixture(autouse=True)
def empty_maps() -> Iterator[None]:
    identity.flush()
    yield
    identity.flush()


def queries() -> CaptureQueriesContext:
    return CaptureQueriesContext(connections[MEMORY])


def stored(model: type[models.Model], pk: Any) -> dict[str, Any] | None:
    """The row as the database holds it (``values()`` never goes through the map)."""
    return model.objects.filter(pk=pk).values().first()  # type: ignore[no-any-return]


def seen(instance: models.Model | None) -> dict[str, Any] | None:
    if instance is None:
        return None
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def mapped_read(model: type[models.Model], pk: Any) -> models.Model | None:
    try:
        return model.objects.get(pk=pk)
    except model.DoesNotExist:  # type: ignore[attr-defined]
        return None


# One instance per row


def test_the_same_row_is_the_same_instance() -> None:
    pk = Country.objects.create(code="FR", name="France").pk
    first = Country.objects.get(pk=pk)
    assert Country.objects.get(pk=pk) is first
    assert Country.objects.get(id=pk) is first
    assert Country.objects.filter(name="France")[0] is first
    assert Country.objects.filter(pk=pk).first() is first
    assert Country.objects.in_bulk([pk]) == {pk: first}
    assert Country.objects.all().get(pk=pk) is first
    city = City.objects.create(country=first, name="Paris")
    assert City.objects.get(pk=city.pk).country is first


def test_fast_paths_compile_no_sql() -> None:
    france = Country.objects.create(code="FR", name="France")
    spain = Country.objects.create(code="ES", name="Spain")
    paris = City.objects.create(country=france, name="Paris")
    mapped = list(Country.objects.order_by("pk"))
    fresh_paris = City.objects.only("pk", "country").get(pk=paris.pk)  # not mapped: deferred fields
    with queries() as captured:
        assert Country.objects.get(pk=france.pk) is mapped[0]
        assert Country.objects.get(id=str(spain.pk)) is mapped[1]
        assert Country.objects.filter(pk=spain.pk).first() is mapped[1]
        assert Country.objects.in_bulk([france.pk, spain.pk]) == {france.pk: mapped[0], spain.pk: mapped[1]}
        assert fresh_paris.country is mapped[0]
    assert captured.captured_queries == []


def test_reads_the_map_cannot_answer_go_to_the_database() -> None:
    france = Country.objects.create(code="FR", name="France")
    Country.objects.get(pk=france.pk)
    paris = City.objects.create(country=france, name="Paris")
    other = City.objects.create(country=Country.objects.create(code="ES", name="Spain"), name="Madrid")
    City.objects.get(pk=other.pk)
    with pytest.raises(City.DoesNotExist):
        france.cities.get(pk=other.pk)  # a related manager filters: never from the map
    assert france.cities.get(pk=paris.pk).name == "Paris"
    with pytest.raises(Country.DoesNotExist):
        Country.objects.filter(name="Spain").get(pk=france.pk)
    with pytest.raises(Country.DoesNotExist):
        Country.objects.get(pk=france.pk + 1000)
    with queries() as captured:
        assert Country.objects.filter(pk=france.pk).exclude(name="France").first() is None
    assert len(captured.captured_queries) == 1


# Every write path, then a read through the map


def _save(pk: int) -> None:
    country = Country.objects.get(pk=pk)
    country.name = "saved"
    country.save()


def _create_again(pk: int) -> None:
    Country.objects.filter(pk=pk).delete()
    Country.objects.bulk_create([Country(pk=pk, code="XX", name="bulk created")])


def _bulk_update(pk: int) -> None:
    country = Country(pk=pk, code="XX", name="bulk updated")
    Country.objects.bulk_update([country], ["name", "code"])


def _raw(pk: int) -> None:
    with connections[MEMORY].cursor() as cursor:
        cursor.execute("UPDATE tests_country SET name = %s WHERE id = %s", ["raw", pk])


def _raw_pk_change(pk: int) -> None:
    with connections[MEMORY].cursor() as cursor:
        cursor.execute("UPDATE tests_country SET id = id + 1000 WHERE id = %s", [pk])


def _manual_transaction(pk: int) -> None:
    connection = connections[MEMORY]
    connection.set_autocommit(False)
    try:
        Country.objects.filter(pk=pk).update(name="manual")
        connection.commit()
    finally:
        connection.set_autocommit(True)


WRITES: dict[str, Callable[[int], Any]] = {
    "save": _save,
    "delete": lambda pk: Country.objects.get(pk=pk).delete(),
    "queryset-update": lambda pk: Country.objects.filter(pk=pk).update(name="updated"),
    "queryset-update-expression": lambda pk: Country.objects.update(population=models.F("population") + 1),
    "queryset-delete": lambda pk: Country.objects.filter(name="France").delete(),
    "bulk-create-after-delete": _create_again,
    "bulk-update": _bulk_update,
    "update-or-create": lambda pk: Country.objects.update_or_create(pk=pk, defaults={"name": "u-or-c"}),
    "raw-sql": _raw,
    "raw-sql-pk-change": _raw_pk_change,
    "atomic": lambda pk: transaction.atomic(using=MEMORY)(lambda: _save(pk))(),
    "manual-transaction": _manual_transaction,
}


@pytest.mark.parametrize("path", sorted(WRITES))
def test_every_write_path_is_seen(path: str) -> None:
    pk = Country.objects.create(code="FR", name="France").pk
    before = Country.objects.get(pk=pk)  # noqa: F841 - held, as a project would
    WRITES[path](pk)
    assert seen(mapped_read(Country, pk)) == stored(Country, pk)
    assert seen(mapped_read(Country, pk + 1000)) == stored(Country, pk + 1000)
    if stored(Country, pk) is not None:
        assert mapped_read(Country, pk) is mapped_read(Country, pk)  # mapped again


def test_a_row_replaced_by_raw_sql_is_seen() -> None:
    # No table refers to Currency: SQLite deletes the replaced row without any trigger.
    Currency.objects.create(code="EUR", rate=1)
    held = Currency.objects.get(pk="EUR")
    with connections[MEMORY].cursor() as cursor:
        cursor.execute("INSERT OR REPLACE INTO tests_currency (code, rate) VALUES ('EUR', '2')")
    assert Currency.objects.get(pk="EUR") is not held
    assert seen(Currency.objects.get(pk="EUR")) == stored(Currency, "EUR")


def test_cascades_are_seen() -> None:
    france = Country.objects.create(code="FR", name="France")
    paris = City.objects.create(country=france, name="Paris")
    assert City.objects.get(pk=paris.pk).name == "Paris"
    Country.objects.filter(pk=france.pk).delete()
    assert mapped_read(City, paris.pk) is None


def test_restore_is_seen_by_every_thread() -> None:
    pk = Country.objects.create(code="FR", name="France").pk
    mine = Country.objects.get(pk=pk)
    mine.name = "changed, never saved"
    loaded, restored, done = threading.Event(), threading.Event(), threading.Event()
    seen_by_other: list[Any] = []

    def other() -> None:
        try:
            theirs = Country.objects.get(pk=pk)
            theirs.name = "changed, never saved"
            loaded.set()
            assert restored.wait(60)
            seen_by_other.append(Country.objects.get(pk=pk) is theirs)
        finally:
            done.set()
            connections.close_all()

    thread = threading.Thread(target=other)
    thread.start()
    assert loaded.wait(60)
    restore.restore()
    restored.set()
    assert done.wait(60)
    thread.join(60)
    assert seen_by_other == [False]
    assert mapped_read(Country, pk) is not mine
    assert seen(mapped_read(Country, pk)) == stored(Country, pk)


def test_refresh_from_db_reads_the_database() -> None:
    pk = Country.objects.create(code="FR", name="France").pk
    mapped = Country.objects.get(pk=pk)
    mapped.name = "changed, never saved"
    mapped.refresh_from_db()
    assert mapped.name == "France"
    assert Country.objects.get(pk=pk) is mapped


# Transactions


def test_a_rollback_takes_its_changes_out_of_the_map() -> None:
    pk = Country.objects.create(code="FR", name="France").pk
    held = [Country.objects.get(pk=pk)]  # weak references: what nobody holds leaves the map anyway
    with pytest.raises(RuntimeError), transaction.atomic(using=MEMORY):
        Country.objects.filter(pk=pk).update(name="inside")
        held.append(Country.objects.get(pk=pk))  # read, and mapped, inside it
        assert held[-1].name == "inside"
        new = Country.objects.create(code="DE", name="Germany")
        held.append(Country.objects.get(pk=new.pk))
        raise RuntimeError
    assert Country.objects.get(pk=pk).name == "France"
    assert mapped_read(Country, new.pk) is None


def test_closing_a_connection_inside_its_transaction_takes_its_changes_out_of_the_map() -> None:
    """A thread that ends (e.g. a request) with its transaction open: close() rolls it back."""
    pk = Country.objects.create(code="FR", name="France").pk
    connection = connections[MEMORY]
    connection.set_autocommit(False)
    try:
        Country.objects.filter(pk=pk).update(name="inside")
        held = Country.objects.get(pk=pk)  # read, and mapped, inside the transaction
        assert held.name == "inside"
    finally:
        connection.close()
    assert stored(Country, pk)["name"] == "France"  # type: ignore[index]
    assert Country.objects.get(pk=pk).name == "France"


def test_a_savepoint_rollback_takes_its_changes_out_of_the_map() -> None:
    pk = Country.objects.create(code="FR", name="France").pk
    held = []
    with transaction.atomic(using=MEMORY):
        Country.objects.filter(pk=pk).update(name="outer")
        with pytest.raises(RuntimeError), transaction.atomic(using=MEMORY):
            Country.objects.filter(pk=pk).update(name="savepoint")
            held.append(Country.objects.get(pk=pk))
            assert held[-1].name == "savepoint"
            raise RuntimeError
        assert Country.objects.get(pk=pk).name == "outer"
    assert seen(Country.objects.get(pk=pk)) == stored(Country, pk)


def _in_thread(function: Callable[[], Any]) -> Any:
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(function())
        except BaseException as exc:  # handed to the test
            results.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if isinstance(results[0], BaseException):
        raise results[0]
    return results[0]


def test_threads_have_their_own_instances_and_never_see_uncommitted_changes() -> None:
    pk = Country.objects.create(code="FR", name="France").pk
    mine = Country.objects.get(pk=pk)
    loaded, written, read_inside, committed = (threading.Event() for _ in range(4))
    seen_by_other: list[Any] = []

    def other() -> None:
        try:
            instance = Country.objects.get(pk=pk)
            seen_by_other.append(instance is mine)
            loaded.set()
            assert written.wait(60)
            # Served by this thread's map while the writer's transaction is open.
            seen_by_other.append(Country.objects.get(pk=pk).name)
            read_inside.set()
            assert committed.wait(60)
            seen_by_other.append(Country.objects.get(pk=pk).name)
        finally:
            read_inside.set()
            connections.close_all()

    thread = threading.Thread(target=other)
    thread.start()
    assert loaded.wait(60)
    with transaction.atomic(using=MEMORY):
        Country.objects.filter(pk=pk).update(name="committed")
        written.set()
        assert read_inside.wait(60)
    committed.set()
    thread.join(60)
    assert seen_by_other == [False, "France", "committed"]


def test_a_lazy_iterator_never_maps_a_row_another_thread_changed_meanwhile() -> None:
    pks = [Country.objects.create(code="C", name=f"c{number}").pk for number in range(3)]
    rows = Country.objects.order_by("pk").iterator(chunk_size=1)
    held = [next(rows)]  # the statement ran: every row is read
    _in_thread(lambda: Country.objects.filter(pk=pks[1]).update(name="changed"))
    Currency.objects.count()  # a statement of this thread, after the other's commit
    held.append(next(rows))
    assert held[-1].name == "c1"  # what the iterator read, as the ORM gives it
    assert Country.objects.get(pk=pks[1]).name == "changed"


def test_a_process_wide_map_is_shared_by_threads_and_fed_only_outside_transactions() -> None:
    Currency.objects.create(code="EUR", rate=1)
    mine = Currency.objects.get(pk="EUR")
    assert _in_thread(lambda: Currency.objects.get(pk="EUR")) is mine
    with transaction.atomic(using=MEMORY):
        Currency.objects.filter(pk="EUR").update(rate=2)
        inside = Currency.objects.get(pk="EUR")
        assert inside.rate == 2
        assert identity.lookup(MEMORY, Currency, "EUR") is None  # never shared before it commits
        transaction.set_rollback(True, using=MEMORY)
    assert Currency.objects.get(pk="EUR").rate == 1


# References


def test_weak_references_let_instances_go() -> None:
    pk = Country.objects.create(code="FR", name="France").pk
    reference = weakref.ref(Country.objects.get(pk=pk))
    gc.collect()
    assert reference() is None
    with queries() as captured:
        Country.objects.get(pk=pk)
    assert len(captured.captured_queries) == 1


def test_a_strong_map_keeps_instances_up_to_its_limit() -> None:
    france = Country.objects.create(code="FR", name="France")
    pks = [City.objects.create(country=france, name=f"c{number}").pk for number in range(60)]
    reference = weakref.ref(City.objects.get(pk=pks[-1]))
    gc.collect()
    assert reference() is not None  # held by the map
    for pk in pks:
        City.objects.get(pk=pk)
    assert len(identity.map_for(MEMORY, City)) == City.memdb_identity_limit


# Flushing


def test_flush_whole_alias_model_and_instance_with_signals() -> None:
    received: list[tuple[Any, Any, Any]] = []

    def receiver(signal: Any, sender: Any, alias: Any, instance: Any, **kwargs: Any) -> None:
        received.append((signal, sender, alias, instance))

    pre_flush.connect(receiver)
    post_flush.connect(receiver)
    try:
        pk = Country.objects.create(code="FR", name="France").pk
        other = Country.objects.create(code="ES", name="Spain").pk

        def reload_count(*flush_args: Any, **flush_kwargs: Any) -> int:
            held = [Country.objects.get(pk=pk), Country.objects.get(pk=other)]
            received.clear()
            identity.flush(*flush_args, **flush_kwargs)
            with queries() as captured:
                Country.objects.get(pk=pk)
                Country.objects.get(pk=other)
            del held
            return len(captured.captured_queries)

        assert reload_count() == 2
        assert received == [(pre_flush, models.Model, None, None), (post_flush, models.Model, None, None)]
        assert reload_count(using=MEMORY) == 2
        assert received[0][2] == MEMORY
        assert reload_count(using="default") == 0
        assert reload_count(Country) == 2
        assert received[0][1] is Country
        assert reload_count(City) == 0
        instance = Country.objects.get(pk=pk)
        assert reload_count(instance) == 1
        assert received[0][1:] == (Country, MEMORY, instance)
    finally:
        pre_flush.disconnect(receiver)
        post_flush.disconnect(receiver)


def test_migrate_flushes_the_map() -> None:
    pk = Country.objects.create(code="FR", name="France").pk
    mapped = Country.objects.get(pk=pk)
    call_command("migrate", database=MEMORY, verbosity=0)
    assert Country.objects.get(pk=pk) is not mapped


def test_request_end_flushes_only_when_asked(settings: Any) -> None:
    from django.core.signals import request_finished

    pk = Country.objects.create(code="FR", name="France").pk
    mapped = Country.objects.get(pk=pk)
    request_finished.send(sender=None)
    assert Country.objects.get(pk=pk) is mapped  # rows stay mapped across requests
    settings.MEMDB_IDENTITY_FLUSH_AT_REQUEST_END = True
    request_finished.send(sender=None)
    assert Country.objects.get(pk=pk) is not mapped


@isolate_apps("tests")
def test_a_model_outside_memory_cannot_ask_for_the_map() -> None:
    class Misplaced(models.Model, IdentityMapped):
        name = models.CharField(max_length=10)

    [error] = identity_map_errors([Misplaced, Country, City, Currency])
    assert error.id == "django_memdb.E020"
    assert "tests.Misplaced" in error.msg and "InMemoryDB" in error.hint


# Other processes


def test_host_mode_another_process_commit_is_seen_by_the_next_read(scratch: Scratch, tmp_path: Path) -> None:
    host = {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path)}
    first = Worker(scratch, "first", **host)
    second = Worker(scratch, "second", **host)
    pk = first.ask("name-new France")
    name, instance, _ = first.ask(f"name-get {pk}")
    assert first.ask(f"name-get {pk}") == [name, instance, True]  # served by the map, also in the next request
    assert second.ask(f"name-set {pk} Frankreich") == 1
    assert first.ask(f"name-get {pk}")[0] == "Frankreich"
    first.child.finish().check()
    second.child.finish().check()


@pytest.mark.processes
@pytest.mark.cluster
def test_cluster_mode_another_process_commit_is_seen_from_the_next_request(scratch: Scratch) -> None:
    label = {"MEMDB_TEST_IDENTITY_MODEL": "cluster_app.Label", "MEMDB_TEST_WORKER_MODEL": "cluster_app.Entry"}
    first = Worker(scratch, "first", "tests.settings_cluster", **label)
    second = Worker(scratch, "second", "tests.settings_cluster", **label)
    pk = first.ask("name-new before")
    assert first.ask(f"name-get {pk}")[::2] == ["before", True]  # mapped within the request
    assert second.ask(f"name-get {pk}")[0] == "before"
    assert second.ask(f"name-set {pk} after") == 1
    assert first.ask(f"name-get {pk}")[::2] == ["after", True]
    assert first.ask(f"name-set {pk} again") == 1  # its own write: seen at once
    assert first.ask(f"name-get {pk}")[0] == "again"
    first.child.finish().check()
    second.child.finish().check()
