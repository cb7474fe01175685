"""What the management commands and the admin report and do: status, verify, restore, compact.

Everything here works on the in-memory database the calling process sees (its
own in mode ``process``, the host's shared file in mode ``host``): the memory
is read under the database lock, so a table is seen
in one committed state, and compared with what storage would restore.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections, models
from django.db.models import Count, Sum
from django.db.models.functions import Length
from django.utils import timezone

from . import lifecycle, modes, processors, registry, restore, rows, storage
from .backend.shared import SharedDatabase
from .capture import CHANGES
from .conf import conf
from .exceptions import MemDBError
from .models import PersistentJournal, PersistentStorage, SpoolLease

logger = logging.getLogger("django_memdb")

# Primary keys listed per kind of difference.
FIRST = 5

Progress = Callable[[str], None]


def progress_to(stream: Any) -> Progress:
    """Progress lines on a terminal; on the ``django_memdb`` logger otherwise."""
    isatty = getattr(stream, "isatty", None)
    if callable(isatty) and isatty():
        return lambda message: stream.write(message)
    return lambda message: logger.info("django_memdb: %s", message)


def _quiet(message: str) -> None:
    pass


def label(model: type[models.Model]) -> str:
    """``app_label.ModelName``, as stored in PersistentStorage and accepted by ``--model``."""
    application, modelname = registry.storage_key(model)
    return f"{application}.{modelname}"


def resolve_models(labels: Iterable[str] | None, persistent: bool = True) -> list[type[models.Model]]:
    """The models named ``app_label.ModelName``, or all; MemDBError for a wrong name."""
    known = registry.persistent_models() if persistent else registry.in_memory_models()
    if not labels:
        return sorted(known, key=label)
    wanted: list[type[models.Model]] = []
    kind = "persistent in-memory" if persistent else "in-memory"
    for name in labels:
        try:
            model = apps.get_model(name)
        except (LookupError, ValueError):
            raise MemDBError(
                f"Unknown model {name!r}: give it as app_label.ModelName, one of "
                f"{', '.join(label(m) for m in known) or 'none'}."
            ) from None
        if model not in known:
            raise MemDBError(f"{model._meta.label} is not a {kind} model: nothing to do for it.")
        if model not in wanted:
            wanted.append(model)
    return wanted


# Reading memory and storage.


def require_storage(using: str | None = None) -> None:
    """MemDBError saying to run migrate when the storage tables are missing."""
    using = using or conf.MEMDB_SPOOL_DATABASE
    if not storage.storage_table_exists(connections[using]):
        raise MemDBError(storage.missing_storage_message(using))


def _pending_by_table(database: SharedDatabase) -> dict[str, int]:
    cursor = database.connection.execute(f"SELECT tbl, count(DISTINCT pk) FROM {CHANGES} GROUP BY tbl")
    return dict(cursor.fetchall())


def _memory_rows(database: SharedDatabase, codec: rows.TableCodec) -> list[tuple[Any, ...]]:
    """Rows of a table; called with the database lock held."""
    return database.connection.execute(f"SELECT {codec.select_columns} FROM {codec.quoted_table}").fetchall()


def _stored(model: type[models.Model], using: str) -> tuple[models.QuerySet[Any], models.QuerySet[Any]]:
    application, modelname = registry.storage_key(model)
    return (
        PersistentStorage.objects.using(using).filter(application=application, modelname=modelname),
        PersistentJournal.objects.using(using).filter(application=application, modelname=modelname),
    )


@dataclass
class StoredState:
    """What a restore of one table would load, and where it came from.

    ``rows`` maps each primary key (as a SQLite parameter) to the row's JSON
    primary key and its SQLite parameters, the form in which rows compare
    (an empty tuple when they were not kept).
    """

    rows: dict[Any, tuple[Any, tuple[Any, ...]]] = field(default_factory=dict)
    snapshot_rows: int = 0
    journal_entries: int = 0
    journal_rows: int = 0


def stored_state(
    model: type[models.Model], using: str | None = None, keep: bool = True, strict: bool = False
) -> StoredState:
    """Decode the newest snapshot and replay the journal, as a restore at start does.

    Every item is converted to the model's columns, so a bad item raises the
    RestoreError a restore would. With ``keep`` false only primary keys are
    kept; ``strict`` checks each value against its field (see
    ``restore.item_params``).
    """
    using = using or conf.MEMDB_SPOOL_DATABASE
    application, modelname = registry.storage_key(model)
    name = f"{application}.{modelname}"
    codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
    snapshots, journal = _stored(model, using)
    state = StoredState()

    def replay(items: Iterator[Any], where: str) -> int:
        count = 0
        for index, item in enumerate(items):
            params = restore.item_params(codec, item, name, strict, f"item {index} of {where}")
            count += 1
            if item.get("deleted"):
                state.rows.pop(params[0], None)
            else:
                state.rows[params[0]] = (item["pk"], params if keep else ())
        return count

    snapshot = snapshots.order_by("-id").only("codec", "data").first()
    if snapshot is not None:
        items = processors.decode(model, application, modelname, snapshot.data, snapshot.codec)
        state.snapshot_rows = replay(items, f"snapshot {snapshot.pk}")
    entries = journal.order_by("id").values_list("id", "codec", "data")
    for entry_id, codec_name, data in entries.iterator(chunk_size=20):
        items = processors.decode(model, application, modelname, data, codec_name)
        state.journal_rows += replay(items, f"journal entry {entry_id}")
        state.journal_entries += 1
    return state


def orphans(using: str | None = None) -> list[str]:
    """``app.Model`` of stored rows that belong to no persistent model of this project."""
    using = using or conf.MEMDB_SPOOL_DATABASE
    keys = set(PersistentStorage.objects.using(using).values_list("application", "modelname").distinct())
    keys |= set(PersistentJournal.objects.using(using).values_list("application", "modelname").distinct())
    return sorted(f"{a}.{m}" for a, m in keys if registry.model_for_key(a, m) is None)


def orphan_message(name: str) -> str:
    return (
        f"Stored rows of {name} belong to no persistent model of this project; they are "
        f"kept. Restore the model (or its PeristentInMemoryDB tag), or delete the rows "
        f"in the admin."
    )


# Status.


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


# Verification.


@dataclass
class TableCheck:
    """How one table in memory compares with what storage would restore."""

    model: str
    memory_rows: int = 0
    stored_rows: int = 0
    missing: list[Any] = field(default_factory=list)  # stored, not in memory
    extra: list[Any] = field(default_factory=list)  # in memory, not stored
    different: list[Any] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)  # pk -> differing field names
    missing_count: int = 0
    extra_count: int = 0
    different_count: int = 0
    pending: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing_count or self.extra_count or self.different_count or self.pending or self.error)

    def summary(self) -> str:
        if self.ok:
            return f"{self.model}: {plural(self.memory_rows, 'row')}, memory matches storage"
        parts = []
        if self.error:
            parts.append(self.error)
        for count, pks, what in (
            (self.missing_count, self.missing, "stored but missing in memory"),
            (self.extra_count, self.extra, "in memory but not stored"),
            (self.different_count, self.different, "different"),
        ):
            if count:
                shown = ", ".join(_pk_text(pk, self.fields) for pk in pks)
                more = ", ..." if count > len(pks) else ""
                parts.append(f"{plural(count, 'row')} {what} (pk {shown}{more})")
        if self.pending:
            parts.append(f"{plural(self.pending, 'changed row')} not flushed yet (use --flush)")
        return (
            f"{self.model}: DIFFERS ({self.memory_rows} in memory, {self.stored_rows} stored): "
            + "; ".join(parts)
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _pk_text(pk: Any, fields: dict[str, list[str]]) -> str:
    names = fields.get(str(pk))
    return f"{pk} [{', '.join(names)}]" if names else str(pk)


def _verify_table(database: SharedDatabase, model: type[models.Model], using: str) -> TableCheck:
    name = label(model)
    codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
    check = TableCheck(model=name)
    # Hold the lock across both reads: no flush can move storage past the memory read.
    with database.lock:
        failure = database.failed.get(model)
        memory = {}
        for row in _memory_rows(database, codec):
            item = codec.item(row)
            memory[codec.pk_param(item["pk"])] = (item["pk"], codec.params(item))
        check.pending = _pending_by_table(database).get(model._meta.db_table, 0)
        try:
            stored = stored_state(model, using).rows
        except MemDBError as exc:
            check.error = str(exc)
            stored = {}
    if failure is not None:
        blocked = f"the table is blocked since its restore failed: {failure}"
        check.error = f"{check.error}; {blocked}" if check.error else blocked
    check.memory_rows, check.stored_rows = len(memory), len(stored)
    for key, (stored_pk, expected) in stored.items():
        if key not in memory:
            check.missing_count += 1
            if len(check.missing) < FIRST:
                check.missing.append(stored_pk)
            continue
        pk, params = memory[key]
        if params != expected:
            check.different_count += 1
            if len(check.different) < FIRST:
                check.different.append(pk)
                check.fields[str(pk)] = [
                    field_name
                    for field_name, mine, theirs in zip(["pk", *codec.names], params, expected, strict=False)
                    if mine != theirs
                ]
    for key, (pk, _params) in memory.items():
        if key not in stored:
            check.extra_count += 1
            if len(check.extra) < FIRST:
                check.extra.append(pk)
    return check


def verify(
    model_list: Iterable[type[models.Model]] | None = None,
    flush: bool = False,
    progress: Progress = _quiet,
) -> list[TableCheck]:
    """Compare each persistent table in memory with its snapshot and journal, row by row."""
    database = lifecycle.current_database()
    using = conf.MEMDB_SPOOL_DATABASE
    require_storage(using)
    if flush:
        lifecycle.flush(database, raise_errors=True)
    selected = list(model_list) if model_list is not None else list(registry.persistent_models())
    checks = []
    for number, model in enumerate(selected, 1):
        progress(f"Verifying {label(model)} ({number}/{len(selected)})")
        checks.append(_verify_table(database, model, using))
    return checks


# Restore.


@dataclass
class LoadResult:
    """What storage holds for one table, and whether it was (or would be) loaded."""

    model: str
    rows: int = 0
    snapshot_rows: int = 0
    journal_entries: int = 0
    journal_rows: int = 0
    memory_rows: int = 0
    error: str | None = None

    def summary(self, done: bool) -> str:
        if self.error:
            return f"{self.model}: FAILED: {self.error}"
        if self.snapshot_rows or self.journal_entries:
            source = f"snapshot of {plural(self.snapshot_rows, 'row')}"
            if self.journal_entries:
                source += (
                    f" + {plural(self.journal_entries, 'journal entry', 'journal entries')} "
                    f"of {plural(self.journal_rows, 'row')}"
                )
        else:
            source = "nothing stored"
        if done:
            return f"{self.model}: restored {plural(self.rows, 'row')} ({source}); memory held {self.memory_rows}"
        return f"{self.model}: storage holds {plural(self.rows, 'row')} ({source}); memory holds {self.memory_rows}"


def dry_run(model_list: Iterable[type[models.Model]], progress: Progress = _quiet) -> list[LoadResult]:
    """Decode and convert what storage holds for each table; memory and storage are not touched."""
    database = lifecycle.current_database()
    wrapper = connections[conf.MEMDB_NAME]
    require_storage()
    selected = list(model_list)
    results = []
    for number, model in enumerate(selected, 1):
        progress(f"Checking the stored data of {label(model)} ({number}/{len(selected)})")
        result = LoadResult(model=label(model))
        with database.lock:
            codec = rows.codec_for(model, wrapper)
            result.memory_rows = database.connection.execute(
                f"SELECT count(*) FROM {codec.quoted_table}"
            ).fetchone()[0]
        try:
            state = stored_state(model, keep=False, strict=True)
        except MemDBError as exc:
            result.error = str(exc)
        else:
            result.rows = len(state.rows)
            result.snapshot_rows, result.journal_entries, result.journal_rows = (
                state.snapshot_rows, state.journal_entries, state.journal_rows,
            )
        results.append(result)
    return results


def replace(model_list: Iterable[type[models.Model]], progress: Progress = _quiet) -> list[LoadResult]:
    """Replace each table's contents with what storage holds.

    Pending changes are flushed first, so no committed write is lost. Each
    table's stored data is checked value by value, then the table is emptied
    and loaded (newest snapshot, then journal) in a savepoint with its capture
    triggers off, as at start: a table that fails keeps its previous contents,
    and a table that loads is unblocked.
    """
    database = lifecycle.current_database()
    using = conf.MEMDB_SPOOL_DATABASE
    require_storage(using)
    selected = list(model_list)
    results = []
    with database.lock:
        lifecycle.flush(database, raise_errors=True)
        with lifecycle.reloading(database):
            for number, model in enumerate(selected, 1):
                progress(f"Restoring {label(model)} ({number}/{len(selected)})")
                results.append(_replace_table(database, model, using))
    restore.mark_restored()
    return results


def _replace_table(database: SharedDatabase, model: type[models.Model], using: str) -> LoadResult:
    conn = database.connection
    codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
    result = LoadResult(model=label(model))
    snapshots = _stored(model, using)[0].order_by("-id")[:1]
    state = storage.table_state(database, model)
    before = (state.snapshot_rows, state.journal_rows)
    try:
        # A restore copies integers and texts as they are, and SQLite would
        # store a text in an integer column: check every value first.
        stored_state(model, using, keep=False, strict=True)
        with lifecycle.reloading_table(database, model):
            memory_rows = conn.execute(f"SELECT count(*) FROM {codec.quoted_table}").fetchone()[0]
            conn.execute(f"DELETE FROM {codec.quoted_table}")
            restore._load_table(database, model, snapshots, using)
            result.rows = conn.execute(f"SELECT count(*) FROM {codec.quoted_table}").fetchone()[0]
    except MemDBError as exc:
        state.snapshot_rows, state.journal_rows = before
        result.error = str(exc)
    else:
        restore.unblock(database, model)
        result.snapshot_rows, result.journal_rows = state.snapshot_rows, state.journal_rows
        result.journal_entries = _stored(model, using)[1].count()
        result.memory_rows = memory_rows
        logger.info("django_memdb: restored %s: %d rows", result.model, result.rows)
    return result


# Compaction.


@dataclass
class CompactResult:
    """One table after ``memdb_spool``: its new snapshot, or why it was left alone."""

    model: str
    rows: int = 0
    bytes: int = 0
    removed: bool = False
    skipped: str | None = None

    def summary(self) -> str:
        if self.skipped:
            return f"{self.model}: skipped, {self.skipped}"
        if self.removed:
            return f"{self.model}: empty in memory, no stored rows"
        return f"{self.model}: snapshot of {plural(self.rows, 'row')} ({format_size(self.bytes)}), journal emptied"


def compact(
    model_list: Iterable[type[models.Model]] | None = None,
    progress: Progress = _quiet,
) -> tuple[int, list[CompactResult]]:
    """Flush, then rewrite the snapshot of each table; (rows flushed, one result per table)."""
    database = lifecycle.current_database()
    using = conf.MEMDB_SPOOL_DATABASE
    require_storage(using)
    selected = list(model_list) if model_list is not None else list(registry.persistent_models())
    results = []
    with database.lock:
        flushed = lifecycle.flush(database, raise_errors=True)
        for number, model in enumerate(selected, 1):
            progress(f"Compacting {label(model)} ({number}/{len(selected)})")
            result = CompactResult(model=label(model))
            results.append(result)
            if model in database.failed:
                result.skipped = (
                    f"its stored data could not be restored, so memory does not hold it: "
                    f"fix it and run `manage.py memdb_restore --model {result.model}` first"
                )
                continue
            lifecycle.compact(database, model)
            snapshot = (
                _stored(model, using)[0].order_by("-id").values("rows", size=Length("data")).first()
            )
            if snapshot is None:
                result.removed = True
            else:
                result.rows, result.bytes = snapshot["rows"] or 0, snapshot["size"] or 0
    return flushed, results


# Formatting shared by the commands and the admin.


def plural(count: int, singular: str, many: str | None = None) -> str:
    return f"{count} {singular if count == 1 else many or singular + 's'}"


def format_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{int(seconds // length)}{unit}"
    return f"{int(seconds)}s"
