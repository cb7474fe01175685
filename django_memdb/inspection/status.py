"""``memdb_status``: what memory holds, what storage holds, what is pending, who writes."""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass
from typing import Any

from django.db import DatabaseError, connections, models
from django.db.models import Count, Sum
from django.db.models.functions import Length
from django.utils import timezone

from .. import lifecycle, modes, registry, rows, storage
from ..backend.shared import SharedDatabase
from ..conf import conf
from ..exceptions import MemDBError
from ..models import PersistentJournal, PersistentStorage, SpoolLease
from .reading import _pending_by_table, label, orphans, stored_state


@dataclass
class TableStatus:
    """One in-memory table: what memory holds, what storage holds, what is pending."""

    model: str
    table: str
    persistent: bool
    memory_rows: int | None
    snapshot_rows: int | None = None
    snapshot_bytes: int | None = None
    snapshot_inserted: datetime.datetime | None = None
    snapshot_age_seconds: float | None = None
    snapshot_count: int = 0
    journal_entries: int = 0
    journal_rows: int = 0
    pending: int = 0
    restore_error: str | None = None
    # Stored data that a restore would fail on, while memory holds the table
    # (it was restored before the data went bad, or a host's file was reused).
    stored_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.snapshot_inserted is not None:
            data["snapshot_inserted"] = self.snapshot_inserted.isoformat()
        return data


@dataclass
class Status:
    """The in-memory database of this process and its storage."""

    mode: str
    durability: str
    flush_interval: float
    memory_database: str
    storage_database: str
    flush_error: str | None
    storage_error: str | None
    tables: list[TableStatus]
    orphans: list[str]
    # The process that holds the spool lease (the one writing storage), if any.
    writer: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tables"] = [table.as_json() for table in self.tables]
        if self.writer is not None:
            data["writer"] = {**self.writer, "expires": self.writer["expires"].isoformat()}
        return data


Summary = dict[tuple[str, str], dict[str, Any]]


def _storage_summary(using: str) -> tuple[Summary, Summary]:
    snapshots: dict[tuple[str, str], dict[str, Any]] = {}
    for row in (
        PersistentStorage.objects.using(using)
        .order_by("id")
        .values("application", "modelname", "rows", "inserted", size=Length("data"))
    ):
        key = (row["application"], row["modelname"])
        count = snapshots.get(key, {}).get("count", 0) + 1
        snapshots[key] = {**row, "count": count}  # the newest one is what a restore loads
    journals = {
        (row["application"], row["modelname"]): row
        for row in PersistentJournal.objects.using(using)
        .values("application", "modelname")
        .order_by()
        .annotate(entries=Count("id"), total=Sum("rows"))
    }
    return snapshots, journals


def _writer(database: SharedDatabase, using: str, now: datetime.datetime) -> dict[str, Any] | None:
    holder = SpoolLease.objects.using(using).filter(name=conf.MEMDB_NAME).first()
    if holder is None:
        return None
    return {
        "host": holder.host,
        "pid": holder.pid,
        "generation": holder.generation,
        "expires": holder.expires,
        "active": holder.expires > now,
        "this_process": holder.owner == database.lease_token,
    }


def status() -> Status:
    """Status of every in-memory table of this process (starting the database if need be)."""
    database = lifecycle.current_database()
    wrapper = connections[conf.MEMDB_NAME]
    using = conf.MEMDB_SPOOL_DATABASE
    now = timezone.now()
    with database.lock:
        if getattr(database, "held", None):  # MemDBCache's sets held back (no such thing in cluster mode)
            database.write_held()
        existing = lifecycle.existing_tables(database)
        pending = _pending_by_table(database)
        counts: dict[type[models.Model], int | None] = {}
        for model in registry.in_memory_models():
            codec = rows.codec_for(model, wrapper)
            counts[model] = (
                database.connection.execute(f"SELECT count(*) FROM {codec.quoted_table}").fetchone()[0]
                if model._meta.db_table in existing
                else None
            )
        failed = modes.current().blocked(database)
        flush_error = database.pending_error
    storage_error = None
    snapshots: Summary = {}
    journals: Summary = {}
    orphan_list: list[str] = []
    writer = None
    try:
        if storage.storage_table_exists(connections[using]):
            snapshots, journals = _storage_summary(using)
            orphan_list = orphans(using)
            with connections[using].cursor() as cursor:
                if SpoolLease._meta.db_table in connections[using].introspection.table_names(cursor):
                    writer = _writer(database, using, now)
        else:
            storage_error = storage.missing_storage_message(using)
    except DatabaseError as exc:
        storage_error = f"The '{using}' database cannot be read: {exc}"
    tables = []
    persistent = set(registry.persistent_models())
    for model, count in counts.items():
        key = registry.storage_key(model)
        entry = TableStatus(
            model=label(model), table=model._meta.db_table, persistent=model in persistent,
            memory_rows=count, pending=pending.get(model._meta.db_table, 0),
        )
        snapshot, journal = snapshots.get(key), journals.get(key)
        if entry.persistent and snapshot is not None:
            entry.snapshot_rows = snapshot["rows"]
            entry.snapshot_bytes = snapshot["size"]
            entry.snapshot_inserted = snapshot["inserted"]
            entry.snapshot_age_seconds = round((now - snapshot["inserted"]).total_seconds(), 3)
            entry.snapshot_count = snapshot["count"]
        if entry.persistent and journal is not None:
            entry.journal_entries, entry.journal_rows = journal["entries"], journal["total"] or 0
        if model in failed:
            entry.restore_error = str(failed[model])
        elif entry.persistent and (snapshot is not None or journal is not None):
            entry.stored_error = _stored_error(model, using)
        tables.append(entry)
    return Status(
        mode=conf.MEMDB_MODE, durability=conf.MEMDB_DURABILITY, flush_interval=conf.MEMDB_FLUSH_INTERVAL,
        memory_database=conf.MEMDB_NAME, storage_database=using,
        flush_error=str(flush_error) if flush_error else None, storage_error=storage_error,
        tables=sorted(tables, key=lambda t: t.model), orphans=orphan_list, writer=writer,
    )


def _stored_error(model: type[models.Model], using: str) -> str | None:
    """Why the stored data of a table in memory could not be restored now, if it could not."""
    try:
        stored_state(model, using, keep=False)
    except MemDBError as exc:
        return (
            f"{exc} Memory still holds the table: `manage.py memdb_spool --model {label(model)}` "
            f"stores it anew, replacing the unreadable data."
        )
    except DatabaseError as exc:
        return f"The stored data of {label(model)} cannot be read: {exc}"
    return None
