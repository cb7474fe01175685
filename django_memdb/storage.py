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
from .cluster.state import ClusterState
from .models import PersistentJournal, PersistentStorage, SpoolLease
from .rows import TableCodec

logger = logging.getLogger("django_memdb")


@dataclass
class TableState:
    """What this process knows of a table's storage, for the compaction bound."""

    snapshot_rows: int = 0
    journal_rows: int = 0
    journal_entries: int = 0

    def __setattr__(self, name: str, value: Any) -> None:
        # An emptied journal (a snapshot was written, or a restore starts
        # counting again) has no entries either, whoever empties it.
        super().__setattr__(name, value)
        if name == "journal_rows" and value == 0:
            super().__setattr__("journal_entries", 0)

    def journaled(self, rows: int) -> None:
        """One more journal entry of ``rows`` rows was committed."""
        self.journal_rows += rows
        self.journal_entries += 1


def table_state(database: SharedDatabase | ClusterState, model: type[models.Model]) -> TableState:
    state = database.tables.get(model)
    if state is None:
        state = database.tables[model] = TableState()
    return state


def _filter(queryset: models.QuerySet[Any], model: type[models.Model]) -> models.QuerySet[Any]:
    application, modelname = registry.storage_key(model)
    return queryset.filter(application=application, modelname=modelname)


def delete_stored(database: SharedDatabase | ClusterState, model: type[models.Model], using: str) -> None:
    """Remove the stored rows of this one table (it became empty)."""
    with transaction.atomic(using=using):
        _filter(PersistentJournal.objects.using(using), model).delete()
        _filter(PersistentStorage.objects.using(using), model).delete()
    database.tables.pop(model, None)


def delete_stored_held(model: type[models.Model], spool: BaseDatabaseWrapper, held: tuple[str, str, int]) -> bool:
    """Remove the stored rows of an emptied table if the lease row still is ``held``
    = (name, owner, generation); False otherwise (nothing removed).

    The removal of a flush's fast path (spool.py): written without the
    in-memory lock like a journal append, since removing a large journal can
    take longer than any slice of work should make the other threads wait.
    Its snapshot row goes first, conditional on the lease row in the same
    statement, then its journal in the same transaction.
    """
    application, modelname = registry.storage_key(model)
    sql = _delete_held_sql.get(spool.vendor)
    if sql is None:
        quote = spool.ops.quote_name
        sql = _delete_held_sql[spool.vendor] = (
            f"DELETE FROM {quote(PersistentStorage._meta.db_table)} WHERE {quote('application')} = %s "
            f"AND {quote('modelname')} = %s AND EXISTS (SELECT 1 FROM {quote(SpoolLease._meta.db_table)} l "
            f"WHERE l.{quote('name')} = %s AND l.{quote('owner')} = %s AND l.{quote('generation')} = %s"
            f"{_HELD_LOCK[spool.vendor]})"
        )
    with transaction.atomic(using=spool.alias):
        if _execute(spool, sql, [application, modelname, *held]) == 0:
            return False
        _filter(PersistentJournal.objects.using(spool.alias), model).delete()
    return True


_delete_held_sql: dict[str, str] = {}
_journal_sql: dict[tuple[str, bool], str] = {}
_INSERTED = PersistentJournal._meta.get_field("inserted")


def _journal_insert(
    model: type[models.Model], items: list[dict[str, Any]], spool: BaseDatabaseWrapper,
    held: tuple[str, str, int] | None = None,
) -> bool:
    """INSERT ... SELECT one journal entry if the table has a snapshot (and, given
    ``held``, if the lease row still is ``held``); True if it inserted it."""
    blob, codec = processors.encode(model, items)
    application, modelname = registry.storage_key(model)
    key = (spool.vendor, held is not None)
    sql = _journal_sql.get(key)
    if sql is None:
        sql = _journal_sql[key] = _journal_insert_sql(spool, held is not None)
    inserted = _INSERTED.get_db_prep_save(timezone.now(), spool)
    params = [application, modelname, inserted, codec, blob, len(items), application, modelname]
    if held is not None:
        params += held
    return _execute(spool, sql, params) == 1


def _journal_insert_sql(spool: BaseDatabaseWrapper, held: bool) -> str:
    quote = spool.ops.quote_name
    journal = quote(PersistentJournal._meta.db_table)
    columns = ", ".join(quote(c) for c in ("application", "modelname", "inserted", "codec", "data", "rows"))
    storage = quote(PersistentStorage._meta.db_table)
    if not held:
        return (
            f"INSERT INTO {journal} ({columns}) SELECT %s, %s, %s, %s, %s, %s FROM {storage} "
            f"WHERE {quote('application')} = %s AND {quote('modelname')} = %s LIMIT 1"
        )
    return (
        f"INSERT INTO {journal} ({columns}) SELECT %s, %s, %s, %s, %s, %s "
        f"FROM {storage} s, {quote(SpoolLease._meta.db_table)} l "
        f"WHERE s.{quote('application')} = %s AND s.{quote('modelname')} = %s AND l.{quote('name')} = %s "
        f"AND l.{quote('owner')} = %s AND l.{quote('generation')} = %s LIMIT 1{_HELD_LOCK[spool.vendor]}"
    )


_plain_sql: dict[str, str] = {}


def append_journal_plain(model: type[models.Model], items: list[dict[str, Any]], spool: BaseDatabaseWrapper) -> None:
    """Append a journal entry in a plain INSERT: the writer holds the server's lock
    (server_lease.py) and knows the table has a snapshot (only the lease holder
    writes or removes snapshots)."""
    blob, codec = processors.encode(model, items)
    application, modelname = registry.storage_key(model)
    sql = _plain_sql.get(spool.vendor)
    if sql is None:
        quote = spool.ops.quote_name
        columns = ", ".join(quote(c) for c in ("application", "modelname", "inserted", "codec", "data", "rows"))
        sql = _plain_sql[spool.vendor] = (
            f"INSERT INTO {quote(PersistentJournal._meta.db_table)} ({columns}) VALUES (%s, %s, %s, %s, %s, %s)"
        )
    inserted = _INSERTED.get_db_prep_save(timezone.now(), spool)
    _execute(spool, sql, [application, modelname, inserted, codec, blob, len(items)], prepared=True)


_qmark: dict[str, str] = {}
# A psycopg prepare_threshold that no count of executions reaches: only prepare=True prepares.
_PREPARE_EXPLICIT_ONLY = 1 << 62


def _execute(spool: BaseDatabaseWrapper, sql: str, params: list[Any], prepared: bool = False) -> int:
    """Run a journal append on ``spool``; the number of rows it inserted.

    Django's cursor (a wrapper made per statement, the query rewritten for
    SQLite) costs more Python than the rest of an append: the statement runs
    on a DB-API cursor kept per connection, with Django's checks and error
    translation. Where the statement must be seen (queries logged, execute
    wrappers installed), it goes through Django's cursor. ``prepared``: on
    psycopg 3, a statement of plain parameters (no type to infer) is prepared
    once per session and sent with its parameters apart; only for the server
    lock's own session (server_lease.py), which no pooler shares (its
    advisory lock is the session's) and which prepares nothing else.
    """
    if spool.queries_logged or spool.execute_wrappers:
        with spool.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)
    if spool.connection is None:
        spool.ensure_connection()
    spool.validate_no_broken_transaction()
    raw = spool.connection
    name = "_memdb_prepared_cursor" if prepared else "_memdb_journal_cursor"
    kept = vars(spool).get(name)
    if kept is None or kept[0] is not raw:
        kept = vars(spool)[name] = (raw, *_journal_cursor(spool, raw, prepared))
    _, cursor, server_binding = kept
    if spool.vendor == "sqlite":  # the DB-API cursor of sqlite3 takes "?"
        sql = _qmark.get(sql) or _qmark.setdefault(sql, sql.replace("%s", "?"))
    with spool.wrap_database_errors:
        if server_binding:
            cursor.execute(sql, params, prepare=True)
        else:
            cursor.execute(sql, params)
    return int(cursor.rowcount)


def _journal_cursor(spool: BaseDatabaseWrapper, raw: Any, prepared: bool) -> tuple[Any, bool]:
    """(a DB-API cursor of ``raw``, whether it binds on the server and prepares)."""
    database_api = getattr(spool, "Database", None)  # the DB-API module of the backend
    server_binding = getattr(database_api, "Cursor", None) if prepared and spool.vendor == "postgresql" else None
    if server_binding is None:
        return raw.cursor(), False
    if raw.prepare_threshold is None:  # Django's default: nothing is prepared
        raw.prepare_threshold = _PREPARE_EXPLICIT_ONLY
    return server_binding(raw), True


def journal_watermark(using: str) -> int:
    """The highest id of the journal (0 if empty): see server_lease's watermark."""
    return PersistentJournal.objects.using(using).aggregate(top=models.Max("id"))["top"] or 0


def append_journal(
    model: type[models.Model], items: list[dict[str, Any]], spool: BaseDatabaseWrapper
) -> bool:
    """Append a journal entry if the table has a snapshot; False if it has none."""
    # Conditional on the snapshot row in the same statement: if someone
    # removed the snapshot, the caller writes a full one instead.
    return _journal_insert(model, items, spool)


# Locking clause that makes the read of the lease row in append_journal_held
# wait for a concurrent UPDATE of that row (a takeover, or a loader's bump in
# lease.observe) and then see its result. Without it, an INSERT ... SELECT on
# MySQL/MariaDB under READ COMMITTED reads the old row version without waiting.
# SQLite needs none: a writing statement takes the database's write lock
# before it reads anything.
_HELD_LOCK = {"sqlite": "", "postgresql": " FOR SHARE OF l", "mysql": " LOCK IN SHARE MODE"}


def can_append_held(spool: BaseDatabaseWrapper) -> bool:
    """Whether append_journal_held knows how to lock the lease row on this database."""
    return spool.vendor in _HELD_LOCK


def append_journal_held(
    model: type[models.Model], items: list[dict[str, Any]], spool: BaseDatabaseWrapper,
    held: tuple[str, str, int],
) -> bool:
    """Append a journal entry in one statement if the table has a snapshot AND the lease
    row still is ``held`` = (name, owner, generation); False otherwise (nothing written).

    The journal write of a lease owner that need not renew (see lease.held):
    one autocommit statement instead of a transaction that claims the lease.
    """
    return _journal_insert(model, items, spool, held)


def _counted(items: Iterable[dict[str, Any]], counter: list[int]) -> Iterator[dict[str, Any]]:
    for item in items:
        counter[0] += 1
        yield item


def write_snapshot(
    database: SharedDatabase | ClusterState, model: type[models.Model], codec: TableCodec, using: str
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


def has_rows(database: SharedDatabase | ClusterState, codec: TableCodec) -> bool:
    return database.connection.execute(f"SELECT 1 FROM {codec.quoted_table} LIMIT 1").fetchone() is not None


def store_whole(
    database: SharedDatabase | ClusterState, model: type[models.Model], codec: TableCodec, using: str
) -> None:
    """Compaction: the table's snapshot rewritten, or its stored rows removed if it is empty."""
    if not has_rows(database, codec):
        delete_stored(database, model, using)
        return
    count = write_snapshot(database, model, codec, using)
    logger.info("django_memdb: compacted %s into a snapshot of %d rows", model._meta.label, count)


BLOB_CHUNK = 4 << 20


def blob_chunks(model: type[models.Model], pk: int, using: str) -> Iterator[bytes]:
    """A stored blob in pieces.

    On SQLite it is read incrementally, so a large snapshot is never held
    whole; SQL range functions would load all of it for every range, so other
    databases return it in one piece.
    """
    connection = connections[using]
    raw = connection.connection if connection.vendor == "sqlite" else None
    if raw is not None and hasattr(raw, "blobopen") and not connection.in_atomic_block:
        with raw.blobopen(model._meta.db_table, "data", pk, readonly=True) as blob:
            while piece := blob.read(BLOB_CHUNK):
                yield piece
        return
    yield processors.as_bytes(model._default_manager.using(using).values_list("data", flat=True).get(pk=pk))


# A journal entry costs a restart about as much as ENTRY_ROWS stored rows more
# than the rows it holds (a blob to fetch and decode); see journal_limits.
ENTRY_ROWS = 4


def journal_limits(snapshot_rows: int, minimum: int, ratio: float) -> tuple[float, float]:
    """The most journal rows, and the most journal entries, a table carries before compaction.

    Rows: ``max(minimum, ratio * snapshot_rows)``, the settings' bound. Entries:
    that bound divided by ENTRY_ROWS (never below ``minimum``), so that a journal
    of one-row entries (one per committed write) is compacted when replaying
    it costs about as much as a journal of that many rows in few entries.
    Both bounds grow with the table, so that one compaction (which rewrites
    the whole table) is spread over as many writes as the table has rows
    divided by ENTRY_ROWS.
    """
    rows = max(minimum, ratio * snapshot_rows)
    return rows, max(minimum, rows / ENTRY_ROWS)


def needs_compaction(state: TableState, minimum: int, ratio: float) -> bool:
    rows, entries = journal_limits(state.snapshot_rows, minimum, ratio)
    return state.journal_rows > rows or state.journal_entries > entries


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
