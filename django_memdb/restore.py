"""Loading stored snapshots and journals into the in-memory tables.

A table is loaded from its snapshot, then from its journal entries in order,
with bulk upserts on the raw connection and the capture triggers off, so a
restore is not journaled again. A table that fails to load is rolled back to
empty, blocked with the error, and its stored rows are left as they are.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from itertools import islice
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, models

from . import lease, processors, registry, rows, sharing
from . import settings as memdb_settings
from .backend.shared import SharedDatabase
from .conf import conf
from .exceptions import MemDBError, RestoreError
from .models import PersistentJournal, PersistentStorage
from .storage import blob_chunks, storage_table_exists, table_state

logger = logging.getLogger("django_memdb")

BATCH = 10_000


def mark_restored() -> None:
    memdb_settings.MEMDB_RESTORED = True
    django_settings.MEMDB_RESTORED = True


# What converting a malformed stored item can raise: reported as that item's
# RestoreError, so that one bad row blocks its own table and nothing else.
ITEM_ERRORS = (
    KeyError, TypeError, ValueError, ValidationError, AttributeError, ArithmeticError, RecursionError,
)

_short = rows.short_repr()


def item_params(
    codec: rows.TableCodec, item: dict[str, Any], label: str, strict: bool = False, where: str = ""
) -> tuple[Any, ...]:
    """SQLite parameters of a stored item (only its key for a deletion).

    Raises the RestoreError of an item that does not fit the model, naming it
    by ``where`` (its position) and a shortened repr. ``strict`` also runs each
    field's own validation and NOT NULL, as a dry run does.
    """
    try:
        if not isinstance(item, dict):
            raise TypeError(f"a stored item is a JSON object, not {type(item).__name__}")
        if item.get("deleted"):
            return (codec.key(item["pk"]),)
        params = codec.params(item)
        if strict:
            codec.pk.to_python(item["pk"])
            values = item["fields"]
            for model_field, name in zip(codec.fields, codec.names, strict=False):
                if name in values:
                    if values[name] is None and not model_field.null:
                        raise ValueError(f"{name} is null")
                    model_field.to_python(values[name])
        return params
    except ITEM_ERRORS as exc:
        place = f" ({where})" if where else ""
        raise RestoreError(
            f"Cannot restore {label}: the stored item{place} {_short.repr(item)} does not "
            f"fit the model ({repr(exc)[:300]}). Fix the model or the stored data, then restart "
            f"the process or call django_memdb.tools.restore.restore() in it "
            f"(`manage.py memdb_restore --model {label} --dry-run` checks the stored "
            f"data). The stored rows were kept."
        ) from exc


Entry = tuple[bool, tuple[Any, ...]]


def item_entries(
    codec: rows.TableCodec, items: Iterable[Any], label: str, where: str, strict: bool = False
) -> Iterator[Entry]:
    """(deleted, parameters) of each stored item, checked; ``where`` names the blob."""
    for index, item in enumerate(items):
        params = item_params(codec, item, label, strict, f"item {index} of {where}")
        yield bool(item.get("deleted")), params


def _apply(conn: Any, codec: rows.TableCodec, entries: Iterable[Entry], label: str) -> int:
    upsert, delete = codec.upsert, codec.delete
    count = 0
    iterator = iter(entries)
    while batch := list(islice(iterator, BATCH)):
        upserts: list[tuple[Any, ...]] = []
        deletes: list[tuple[Any, ...]] = []
        for deleted, params in batch:
            (deletes if deleted else upserts).append(params)
        try:
            conn.executemany(upsert, upserts)
            conn.executemany(delete, deletes)
        except (sqlite3.Error, DatabaseError, OverflowError) as exc:
            raise RestoreError(
                f"Cannot restore {label}: {exc}. Does the model still match the stored "
                f"data? Fix it, then restart the process or call "
                f"django_memdb.tools.restore.restore() in it (`manage.py memdb_restore "
                f"--model {label} --dry-run` checks the stored data). The stored rows were kept."
            ) from exc
        count += len(batch)
    return count


def _snapshot_items(model: type[models.Model], snapshot: PersistentStorage, using: str) -> Iterator[Any]:
    application, modelname = registry.storage_key(model)
    if "data" not in snapshot.get_deferred_fields():
        return processors.decode(model, application, modelname, snapshot.data, snapshot.codec)

    def fetch() -> Any:
        return PersistentStorage.objects.using(using).values_list("data", flat=True).get(pk=snapshot.pk)

    def chunks() -> Iterator[bytes]:
        return blob_chunks(PersistentStorage, snapshot.pk, using)

    return processors.decode(model, application, modelname, fetch, snapshot.codec, chunks=chunks)


def _load_table(
    database: Any,
    model: type[models.Model],
    snapshots: Iterable[PersistentStorage],
    using: str,
) -> int:
    """Load a table from the given snapshot rows and its journal; rows loaded.

    A snapshot row given without its data (``.only()``) is read in ranges.
    """
    application, modelname = registry.storage_key(model)
    label = f"{application}.{modelname}"
    codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
    conn = database.connection
    state = table_state(database, model)
    state.snapshot_rows = state.journal_rows = 0
    for snapshot in snapshots:
        items = _snapshot_items(model, snapshot, using)
        entries = item_entries(codec, items, label, f"snapshot {snapshot.pk}")
        state.snapshot_rows += _apply(conn, codec, entries, label)
    journal = (
        PersistentJournal.objects.using(using)
        .filter(application=application, modelname=modelname)
        .order_by("id")
        .values_list("id", "codec", "data", "rows")
    )
    # Entries hold each changed row's last state: merged by key, later wins.
    merged: dict[Any, Entry] = {}
    for entry_id, codec_name, data, count in journal.iterator(chunk_size=200):
        items = processors.decode(model, application, modelname, data, codec_name)
        for deleted, params in item_entries(codec, items, label, f"journal entry {entry_id}"):
            merged.pop(params[0], None)
            merged[params[0]] = (deleted, params)
        state.journal_rows += count
        state.journal_entries += 1
        if len(merged) >= BATCH:
            _apply(conn, codec, merged.values(), label)
            merged = {}
    _apply(conn, codec, merged.values(), label)
    return state.snapshot_rows + state.journal_rows


def load_tables(
    database: Any,
    wanted: dict[type[models.Model], list[PersistentStorage]],
    using: str,
    per_table: Callable[[type[models.Model]], AbstractContextManager[Any]],
) -> dict[type[models.Model], RestoreError]:
    """Load each table inside ``per_table(model)``, which undoes a table that fails."""
    failures: dict[type[models.Model], RestoreError] = {}
    for model, snapshots in wanted.items():
        started = time.perf_counter()
        try:
            with per_table(model):
                count = _load_table(database, model, snapshots, using)
        except MemDBError as exc:
            error = exc if isinstance(exc, RestoreError) else RestoreError(str(exc))
            failures[model] = error
            block(database, model, error)
            logger.error("django_memdb: %s", error)
        else:
            unblock(database, model)
            logger.info(
                "django_memdb: restored %s: %d rows in %.3f s",
                model._meta.label, count, time.perf_counter() - started,
            )
    return failures


def block(database: Any, model: type[models.Model], error: RestoreError) -> None:
    """Refuse the table until it is restored (in host mode in every process of the host)."""
    database.failed[model] = error
    sharing.of(database).record_failure(database, model._meta.db_table, str(error))


def unblock(database: Any, model: type[models.Model]) -> None:
    database.failed.pop(model, None)
    sharing.of(database).clear_failure(database, model._meta.db_table)


def _load(
    database: Any,
    wanted: dict[type[models.Model], list[PersistentStorage]],
    using: str,
) -> dict[type[models.Model], RestoreError]:
    with database.reloading():
        return load_tables(database, wanted, using, database.reloading_table)


def _snapshot_rows(using: str, ids: Iterable[int]) -> list[PersistentStorage]:
    # Without their blobs, which are read in ranges when loaded.
    return list(PersistentStorage.objects.using(using).filter(pk__in=list(ids)).defer("data"))


def stored_tables(using: str) -> dict[type[models.Model], list[PersistentStorage]]:
    """The persistent models that have stored rows, with their current snapshot row."""
    keys: dict[tuple[str, str], list[int]] = {}
    for pk, application, modelname in (
        PersistentStorage.objects.using(using).order_by("id").values_list("id", "application", "modelname")
    ):
        keys.setdefault((application, modelname), []).append(pk)
    for key in PersistentJournal.objects.using(using).values_list("application", "modelname").distinct():
        keys.setdefault((key[0], key[1]), [])
    wanted: dict[type[models.Model], Any] = {}
    for (application, modelname), ids in keys.items():
        model = registry.model_for_key(application, modelname)
        if model is None:
            logger.error(
                "django_memdb: stored rows of %s.%s belong to no persistent model of "
                "this project. They are kept; restore the model (or its "
                "PeristentInMemoryDB tag), or delete the rows in the admin.",
                application, modelname,
            )
            continue
        # Several snapshot rows only come from 0.0.6; the newest one is current.
        wanted[model] = _snapshot_rows(using, ids[-1:])
    return wanted


def storage_missing(using: str) -> bool:
    if storage_table_exists(connections[using]):
        return False
    logger.warning(
        "django_memdb: no stored tables to restore: the django_memdb tables are "
        "missing in the '%s' database. Run `python manage.py migrate`.", using
    )
    return True


def restore_at_start(database: SharedDatabase) -> None:
    """Load every persistent table of this process from storage (tables are empty)."""
    using = conf.MEMDB_SPOOL_DATABASE
    if storage_missing(using):
        return
    lease.observe(database, using)
    wanted = stored_tables(using)
    if wanted:
        _load(database, wanted, using)
    mark_restored()
