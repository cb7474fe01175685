"""Reads and writes of the stored snapshot and journal rows in the spool database."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from . import processors, registry
from .backend.shared import SharedDatabase
from .models import PersistentJournal, PersistentStorage
from .rows import TableCodec

logger = logging.getLogger("django_memdb")


@dataclass
class TableState:
    """What this process knows of a table's storage, for the compaction bound."""

    snapshot_rows: int = 0
    journal_rows: int = 0


def table_state(database: SharedDatabase, model: type[models.Model]) -> TableState:
    state = database.tables.get(model)
    if state is None:
        state = database.tables[model] = TableState()
    return state


def _filter(queryset: models.QuerySet[Any], model: type[models.Model]) -> models.QuerySet[Any]:
    application, modelname = registry.storage_key(model)
    return queryset.filter(application=application, modelname=modelname)


def delete_stored(database: SharedDatabase, model: type[models.Model], using: str) -> None:
    """Remove the stored rows of this one table (it became empty)."""
    with transaction.atomic(using=using):
        _filter(PersistentJournal.objects.using(using), model).delete()
        _filter(PersistentStorage.objects.using(using), model).delete()
    database.tables.pop(model, None)


def append_journal(
    model: type[models.Model], items: list[dict[str, Any]], spool: BaseDatabaseWrapper
) -> bool:
    """Append a journal entry if the table has a snapshot; False if it has none."""
    blob, codec = processors.encode(model, items)
    application, modelname = registry.storage_key(model)
    quote = spool.ops.quote_name
    journal, storage = quote(PersistentJournal._meta.db_table), quote(PersistentStorage._meta.db_table)
    inserted = PersistentJournal._meta.get_field("inserted").get_db_prep_save(timezone.now(), spool)
    columns = ", ".join(quote(c) for c in ("application", "modelname", "inserted", "codec", "data", "rows"))
    # Conditional on the snapshot row in the same statement: if someone
    # removed the snapshot, the caller writes a full one instead.
    sql = (
        f"INSERT INTO {journal} ({columns}) SELECT %s, %s, %s, %s, %s, %s FROM {storage} "
        f"WHERE {quote('application')} = %s AND {quote('modelname')} = %s LIMIT 1"
    )
    params = [application, modelname, inserted, codec, blob, len(items), application, modelname]
    with spool.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


def _counted(items: Iterable[dict[str, Any]], counter: list[int]) -> Iterator[dict[str, Any]]:
    for item in items:
        counter[0] += 1
        yield item


def write_snapshot(
    database: SharedDatabase, model: type[models.Model], codec: TableCodec, using: str
) -> int:
    """Store the whole table as its one snapshot row and drop its journal.

    Called with the database lock held and nothing pending, so the snapshot
    is a committed state of the table that the journal already reached.
    """
    cursor = database.connection.execute(f"SELECT {codec.select_columns} FROM {codec.quoted_table}")
    counter = [0]
    blob, codec_name = processors.encode(model, _counted(map(codec.item, cursor), counter))
    application, modelname = registry.storage_key(model)
    with transaction.atomic(using=using):
        stored = _filter(PersistentStorage.objects.using(using), model)
        ids = list(stored.order_by("-id").values_list("id", flat=True))
        values = {"codec": codec_name, "data": blob, "rows": counter[0], "inserted": timezone.now()}
        if ids:
            stored.filter(id=ids[0]).update(**values)
            stored.exclude(id=ids[0]).delete()
        else:
            PersistentStorage.objects.using(using).create(
                application=application, modelname=modelname, **values
            )
        _filter(PersistentJournal.objects.using(using), model).delete()
    state = table_state(database, model)
    state.snapshot_rows, state.journal_rows = counter[0], 0
    return counter[0]


BLOB_CHUNK = 4 << 20


def blob_chunks(model: type[models.Model], pk: int, using: str) -> Iterator[bytes]:
    """A stored blob in pieces.

    On SQLite it is read incrementally, so a large snapshot is never held
    whole; SQL range functions would load all of it for every range, so other
    databases return it in one piece.
    """
    from .processors import as_bytes

    connection = connections[using]
    raw = connection.connection if connection.vendor == "sqlite" else None
    if raw is not None and hasattr(raw, "blobopen") and not connection.in_atomic_block:
        with raw.blobopen(model._meta.db_table, "data", pk, readonly=True) as blob:
            while piece := blob.read(BLOB_CHUNK):
                yield piece
        return
    yield as_bytes(model.objects.using(using).values_list("data", flat=True).get(pk=pk))


def needs_compaction(state: TableState, minimum: int, ratio: float) -> bool:
    return state.journal_rows > max(minimum, ratio * state.snapshot_rows)


def storage_table_exists(spool: BaseDatabaseWrapper) -> bool:
    with spool.cursor() as cursor:
        tables = spool.introspection.table_names(cursor)
    return PersistentStorage._meta.db_table in tables and PersistentJournal._meta.db_table in tables


def missing_storage_message(using: str) -> str:
    return (
        f"Persistent tables cannot be stored: the tables of django_memdb (PersistentStorage, PersistentJournal) are "
        f"missing in the '{using}' database. Run `python manage.py migrate`; the "
        f"changes stay pending in memory until then."
    )
