"""Cluster mode: make sure the server holds the tables, rebuilding them once when it lost them."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, models, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from .. import bounds, registry, restore, storage
from ..conf import conf
from ..models import PersistentJournal, PersistentStorage
from . import dialect, spool
from .server import reset_sequences, server_lock
from .state import ClusterState

logger = logging.getLogger("django_memdb")


def _tables() -> list[type[models.Model]]:
    """Models whose tables cluster mode creates (M2M tables come with their model)."""
    return [model for model in registry.in_memory_models() if not model._meta.auto_created]


def fingerprint(wrapper: Any) -> str:
    """Identifies the schema of every in-memory table; a deploy that changes one rebuilds."""
    with wrapper.schema_editor(collect_sql=True, atomic=False) as editor:
        for model in _tables():
            editor.create_model(model)
        statements = list(editor.collected_sql)
    statements += [wrapper.memdb_dialect.change_table(), wrapper.memdb_dialect.marker_table()]
    for model in registry.persistent_models():
        statements += wrapper.memdb_dialect.triggers(model)
    # A changed bound rebuilds the tables, as a changed schema does.
    statements += _bound_statements(wrapper.memdb_dialect)
    return hashlib.sha256("\n".join(statements).encode()).hexdigest()


def _bounded(sql: dialect.Dialect) -> list[tuple[type[models.Model], int]]:
    """The tables with a memdb_max_rows, if the server keeps bounds (else check E016 refused them)."""
    if sql.bound_function() is None:
        return []
    found = []
    for model in bounds.bounded_models():
        bound = bounds.max_rows(model)
        if bound is not None and bounds.eviction(model) == bounds.OLDEST:
            found.append((model, bound))
    return found


def _bound_statements(sql: dialect.Dialect) -> list[str]:
    return [statement for model, bound in _bounded(sql) for statement in sql.bound_triggers(model, bound)]


def read_marker(wrapper: Any) -> str | None:
    """The fingerprint the server's tables were built with; None once the server lost them."""
    try:
        with wrapper.cursor() as cursor:
            cursor.execute(f"SELECT fingerprint FROM {wrapper.ops.quote_name(dialect.MARKER)}")
            row = cursor.fetchone()
    except DatabaseError:
        return None  # never built here
    return row[0] if row else None


def connected(wrapper: Any) -> None:
    """A new connection: start this process's use of the tables, or check they are still there."""
    database: ClusterState = wrapper.memdb_database
    if database.ready:
        if read_marker(wrapper) is None:
            _ensure_tables(wrapper, database, at_start=False)
        return
    with database.lock:
        if database.ready:
            return
        database.fingerprint = fingerprint(wrapper)
        _ensure_tables(wrapper, database, at_start=True)
        _read_table_states(database)
        database.name = str(wrapper.settings_dict["NAME"])
        database.ready = True


def _ensure_tables(wrapper: Any, database: ClusterState, at_start: bool) -> None:
    def current(marker: str | None) -> bool:
        # A running process keeps the schema it finds; a starting one brings its own.
        return marker is not None and (marker == database.fingerprint or not at_start)

    if current(read_marker(wrapper)):
        return
    with server_lock(wrapper):
        marker = read_marker(wrapper)
        if current(marker):
            return
        if marker is not None:
            logger.warning("django_memdb: the in-memory models changed: rebuilding their tables from storage")
            _flush_before_rebuild(database)
        else:
            logger.warning("django_memdb: the server holds no in-memory tables: restoring them from storage")
        _rebuild(wrapper, database)


def _flush_before_rebuild(database: ClusterState) -> None:
    try:
        spool.flush(database, raise_errors=True, forced=True)
    except Exception as exc:  # the tables of older models may not match any more
        logger.error("django_memdb: changes pending before the rebuild were not stored: %s", exc)


def _rebuild(wrapper: Any, database: ClusterState) -> None:
    """Tables, empty, then storage loaded into them, then triggers, then the marker."""
    sql = wrapper.memdb_dialect
    quote = wrapper.ops.quote_name
    with wrapper.cursor() as cursor:
        cursor.execute(sql.drop_table(dialect.MARKER))
        for model in reversed(registry.in_memory_models()):
            cursor.execute(sql.drop_table(model._meta.db_table))
        cursor.execute(sql.drop_table(dialect.CHANGES))
    with wrapper.schema_editor() as editor:
        for model in _tables():
            editor.create_model(model)
    with wrapper.cursor() as cursor:
        cursor.execute(sql.change_table())
        cursor.execute(sql.marker_table())
        if sql.vendor == "postgresql":
            cursor.execute(sql.capture_function())
        if _bounded(sql):
            cursor.execute(sql.bound_function())
    database.failed.clear()
    restore_all(wrapper, database)
    with wrapper.cursor() as cursor:
        for model in registry.persistent_models():
            if model not in database.failed:
                for statement in sql.triggers(model):
                    cursor.execute(statement)
        # After the restore, which loaded the rows the evictions had left.
        for statement in _bound_statements(sql):
            cursor.execute(statement)
        cursor.execute(
            f"INSERT INTO {quote(dialect.MARKER)} (fingerprint, started) VALUES (%s, %s)",
            [database.fingerprint, wrapper.ops.adapt_datetimefield_value(timezone.now())],
        )


def restore_all(wrapper: Any, database: ClusterState) -> None:
    """Storage into the (empty, trigger-less) tables; a table that fails stays empty and blocked."""
    using = conf.MEMDB_SPOOL_DATABASE
    if restore.storage_missing(using):
        return
    wanted = restore.stored_tables(using)

    @contextmanager
    def per_table(model: type[models.Model]) -> Iterator[None]:
        try:
            # PostgreSQL checks its (deferred) foreign keys at commit.
            with transaction.atomic(using=wrapper.alias):
                yield
        except BaseException:
            with wrapper.cursor() as cursor:  # MEMORY tables ignore the rollback
                cursor.execute(f"DELETE FROM {wrapper.ops.quote_name(model._meta.db_table)}")
            raise

    restore.load_tables(database, wanted, using, per_table)
    reset_sequences(wrapper, list(wanted))
    restore.mark_restored()


def _read_table_states(database: ClusterState) -> None:
    """What storage holds of each table, for the compaction bound (another process restored it)."""
    using = conf.MEMDB_SPOOL_DATABASE
    try:
        for model in registry.persistent_models():
            application, modelname = registry.storage_key(model)
            where = {"application": application, "modelname": modelname}
            snapshots = PersistentStorage.objects.using(using).filter(**where).order_by("-id")
            rows = snapshots.values_list("rows", flat=True).first()
            if rows is None and not snapshots.exists():
                continue
            state = storage.table_state(database, model)
            state.snapshot_rows = rows or 0
            journal = (
                PersistentJournal.objects.using(using).filter(**where).aggregate(rows=Sum("rows"), entries=Count("id"))
            )
            state.journal_rows = journal["rows"] or 0
            state.journal_entries = journal["entries"]
    except DatabaseError as exc:
        logger.warning("django_memdb: could not read the stored tables: %s", exc)
