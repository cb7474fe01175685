"""The persistence engine: journal committed changes, compact them into snapshots.

A flush takes every change recorded by the capture triggers, reads the
current state of those rows and, in one transaction of the spool database,
appends one journal entry per table (or removes the stored rows of a table
that became empty, or writes the first snapshot of a table). Only then are
the change records deleted, so a failed flush leaves them pending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections, models, transaction

from . import compaction, group_commit, lease, processors, reconnect, registry, rows, server_lease, sharing, storage
from .backend import hooks
from .backend.shared import SharedDatabase
from .capture import CHANGES
from .conf import DURABILITY_COMMIT, conf
from .exceptions import PersistenceError
from .group_commit import GroupCommit
from .transactions import user_in_atomic

logger = logging.getLogger("django_memdb")


def changes_committed(database: SharedDatabase, raise_errors: bool = True) -> None:
    """Called when changes to persistent tables became committed."""
    if conf.MEMDB_DURABILITY == DURABILITY_COMMIT:
        flush(database, raise_errors=raise_errors)
    else:
        # The interval thread or the exit handler takes them.
        database.dirty = False


def _memory_wrapper(database: SharedDatabase) -> Any:
    wrapper = connections[conf.MEMDB_NAME]
    return wrapper if getattr(wrapper, "memdb_database", None) is database else None


def _can_flush_now(database: SharedDatabase) -> bool:
    if not database.connection.in_transaction:
        return True
    # The lock is ours, so is the transaction: flush only if it counts as committed.
    wrapper = _memory_wrapper(database)
    return wrapper is not None and wrapper.memdb_effectively_committed()


def _flush_after_spool_commit() -> None:
    hooks.installed().flush_started()


def flush_after_spool_commit(database: Any, spool: Any) -> None:
    """Written inside the project's transaction on the spool database, a journal
    entry would be lost with its rollback: flush when it commits. If it rolls
    back, ``dirty`` has the end of the request retry (receivers.py)."""
    if not any(f is _flush_after_spool_commit for _, f, _ in spool.run_on_commit):
        spool.on_commit(_flush_after_spool_commit)
    database.dirty = True


def flush(database: SharedDatabase, raise_errors: bool = True, log: bool = True) -> int:
    """Journal all pending changes; returns the number of rows this call journaled.

    Returns once what was committed before the call is stored, possibly by
    another thread's batch (group_commit.py). ``log``: whether a failure is
    logged (the exit handler reports its own).
    """
    group = group_commit.of(database)
    if group.writing():
        return 0
    holding = group_commit.holds(database.lock)
    count = _flush_committed(database, group, raise_errors, log)
    if holding:
        # Storage must not move under a caller that holds the lock.
        with database.lock:
            settled(database)
    return count


def _flush_committed(database: SharedDatabase, group: GroupCommit, raise_errors: bool, log: bool) -> int:
    spool = connections[conf.MEMDB_SPOOL_DATABASE]
    taken: _Batch | int | None = None
    with database.lock:
        if database.flushing or not _can_flush_now(database):
            return 0
        if user_in_atomic(spool):
            flush_after_spool_commit(database, spool)
            return 0
        database.dirty = False
        # Nobody writes: this thread reads its own batch now (group_commit.begin_now).
        number = group.begin_now()
        if number is not None:
            ticket = number
            taken = _begin_batch(database, spool, group, number, raise_errors, log)
        else:
            ticket = group.ticket(database.connection.execute(f"SELECT max(seq) FROM {CHANGES}").fetchone()[0])
    while True:
        if taken is None:
            if group.wait(ticket):
                return 0
            with database.lock:
                number = group.begin(ticket)
                if number is None:
                    continue
                taken = _begin_batch(database, spool, group, number, raise_errors, log)
        if isinstance(taken, int):
            if isinstance(taken, _Stored):
                # Stored under the lock; compaction (in _take before 1.2) starts after it.
                _settle_now(database, group, compact=list(database.tables))
            return taken
        assert number is not None
        written = _write_batch(database, spool, group, number, taken, raise_errors, log)
        if written is not None:
            return written
        taken = None


def _begin_batch(
    database: SharedDatabase, spool: Any, group: GroupCommit, number: int, raise_errors: bool, log: bool
) -> _Batch | int:
    """Under the lock, as the writer of batch ``number``: read it (the fast path's batch),
    or store it whole under the lock (the number of rows journaled, the batch is done)."""
    try:
        taken = _take(database, spool, group, number)
    except BaseException as exc:
        return _failed(database, group, number, exc, raise_errors, pending_labels(database), log)
    if isinstance(taken, int):
        database.pending_error = None
        group.end(number, stored=True)
        return _Stored(taken)
    return taken


class _Stored(int):
    """The rows journaled by a batch stored whole under the lock (compaction may follow)."""


def _write_batch(
    database: SharedDatabase, spool: Any, group: GroupCommit, number: int, taken: _Batch,
    raise_errors: bool, log: bool,
) -> int | None:
    """Write the batch read by _begin_batch without the lock (unless the caller holds it);
    the rows journaled, or None when the lease moved on and the next batch claims it."""
    unsettled = group_commit.Leftover(None, taken.close)
    try:
        work = taken.work
        appended = reconnect.retry_if_dropped(spool, lambda: _append_held(database, spool, work))
    except BaseException as exc:
        return _failed(database, group, number, exc, raise_errors, taken.labels, log, unsettled)
    if not appended:
        # The lease moved on (or needs renewing): the next batch claims it under the lock.
        group.claim_next = True
        group.end(number, stored=False, leftover=unsettled)
        _settle_now(database, group)
        return None
    database.pending_error = None
    group.end(number, stored=True, leftover=group_commit.Leftover(taken.last, taken.close))
    written = [model for model, *_ in taken.work]
    if taken.light and not compaction.due(database, written):
        # Its change records are deleted by the next holder of the lock that settles
        # (group_commit.py): the next batch's writer, or settled(). One hold of the
        # lock less per batch, for a turn that holds nothing another process waits for.
        return taken.count
    try:
        _settle_now(database, group, compact=written)
    except Exception as exc:
        return flush_failed(database, exc, spool, raise_errors, taken.labels, log)
    return taken.count


def _failed(
    database: SharedDatabase, group: GroupCommit, number: int, exc: BaseException, raise_errors: bool,
    labels: str, log: bool, leftover: group_commit.Leftover | None = None,
) -> int:
    """Batch ``number`` failed: nothing of it is deleted; the error is kept (before the
    waiting threads wake up, so that a later batch's success clears it) and raised if asked."""
    try:
        if not isinstance(exc, Exception):
            raise exc
        return flush_failed(database, exc, connections[conf.MEMDB_SPOOL_DATABASE], raise_errors, labels, log)
    finally:
        group.end(number, stored=False, leftover=leftover)
        if leftover is not None:
            _settle_now(database, group)


def flush_failed(
    database: Any, exc: Exception, spool: Any, raise_errors: bool, labels: str = "", log: bool = True
) -> int:
    """A flush failed: the changes stay pending; the error is kept, logged, and raised if asked.

    A connection the server dropped is closed, so that the next flush reconnects.
    """
    reconnect.reset_if_broken(spool)
    error = _explain(exc, spool, labels)
    database.pending_error = error
    if log:
        logger.error("django_memdb: %s", error)
    if raise_errors:
        raise error from exc
    return 0


def pending_labels(database: SharedDatabase) -> str:
    """The models whose changes a failed flush left pending, for its message."""
    try:
        with database.lock:
            settled(database)
            tables = [row[0] for row in database.connection.execute(f"SELECT DISTINCT tbl FROM {CHANGES}")]
    except Exception:  # the message must not fail too
        return ""
    found = (registry.model_for_table(table) for table in tables)
    return ", ".join(sorted(model._meta.label for model in found if model is not None))


def _explain(exc: Exception, spool: Any, labels: str = "") -> PersistenceError:
    if isinstance(exc, PersistenceError):
        return exc
    which = f" (changes of {labels})" if labels else ""
    if isinstance(exc, DatabaseError) and getattr(exc, "args", (None,))[0] in (1153, 2006):
        return PersistenceError(
            f"The '{spool.alias}' database refused a stored blob{which} as too large ({exc}). "
            f"Raise the server's max_allowed_packet (for example SET GLOBAL "
            f"max_allowed_packet = 1073741824) or compress with a store_save processor; "
            f"the changes stay pending in memory."
        )
    if isinstance(exc, DatabaseError):
        try:
            missing = not storage.storage_table_exists(spool)
        except DatabaseError:
            missing = False
        if missing:
            return PersistenceError(storage.missing_storage_message(spool.alias) + which)
    return PersistenceError(
        f"Changes committed in memory{which} could not be written to the '{spool.alias}' "
        f"database: {exc}. They stay pending and are retried at the next write, by "
        f"`manage.py memdb_spool` and at exit."
    )


@dataclass
class _Batch:
    """Pending changes read under the lock, to be appended without it (the fast path)."""

    work: list[Any]
    last: int  # the highest seq of the change records read
    labels: str
    close: Callable[[], Any]  # ends the batch's turn to write storage (host mode: its file lock)
    light: bool = False  # the turn holds nothing (no lock of the host): settling it may wait

    @property
    def count(self) -> int:
        return sum(len(items) for _, _, items, _ in self.work)


def _take(database: SharedDatabase, spool: Any, group: GroupCommit, number: int) -> _Batch | int:
    """As the writer of batch ``number``, under the lock: read what is pending.

    Returns the batch for the fast path (a lease this process holds, every
    table with a snapshot), which the caller writes without the lock; a table
    emptied is removed there too, unless the lease is the server's lock. The
    rarer paths (claiming or renewing the lease, a first snapshot) are taken
    whole under the lock, as is an empty batch; they
    return the number of rows journaled (the caller then starts compactions).
    """
    database.flushing = True
    try:
        _settle(database, group)
        with ExitStack() as turn:
            spooling = sharing.of(database).spooling(database)
            turn.enter_context(spooling)
            read = _read(database)
            if read is None:
                return 0
            work, last, labels = read
            if not work:
                database.connection.execute(f"DELETE FROM {CHANGES} WHERE seq <= ?", (last,))
                return 0
            claim = group.claim_next
            if not claim and _holds_lease(database, spool, work):
                group.in_flight(number, last)
                return _Batch(work, last, labels, turn.pop_all().close, isinstance(spooling, nullcontext))
            group.claim_next = False
            with lease.undone_on_error(database):
                reconnect.retry_if_dropped(spool, lambda: _store(database, spool, work, fast=not claim))
                database.connection.execute(f"DELETE FROM {CHANGES} WHERE seq <= ?", (last,))
            return sum(len(items) for _, _, items, _ in work)
    finally:
        database.flushing = False


def _read(database: SharedDatabase) -> tuple[list[Any], int, str] | None:
    """(work, last seq, labels) of the pending changes; None if there is none."""
    conn = database.connection
    # One statement for the tables and the last change taken: in host mode,
    # other processes may record changes meanwhile, left for the next flush.
    changed = conn.execute(f"SELECT tbl, max(seq) FROM {CHANGES} GROUP BY tbl").fetchall()
    if not changed:
        return None
    max_seq = max(seq for _, seq in changed)
    wrapper = connections[conf.MEMDB_NAME]
    work = []
    labels = []
    for table, _ in changed:
        model = registry.model_for_table(table)
        if model is None:
            continue
        labels.append(model._meta.label)
        if model in database.failed:
            continue
        codec = rows.codec_for(model, wrapper)
        cursor = conn.execute(_changed_rows_sql(codec), (table, max_seq))
        deleted = False
        if processors.listening(model):
            items: list[Any] = []
            for row in cursor:
                if row[1] is None:
                    deleted = True
                    items.append(
                        {"model": codec.label, "pk": codec.pk_to_json(row[0]), "fields": {}, "deleted": True}
                    )
                else:
                    items.append(codec.item(row[1:]))
        else:
            # Kept as their JSON lines (str): untracked by the garbage collector (rows.EncodedLines).
            items = rows.EncodedLines()
            label, item, encode, pk_to_json = codec.label, codec.item, rows.encode_item, codec.pk_to_json
            for row in cursor:
                if row[1] is None:
                    deleted = True
                    items.append(rows.deleted_line(label, pk_to_json(row[0])))
                else:
                    items.append(encode(item(row[1:])))
        empty = deleted and not storage.has_rows(database, codec)
        work.append((model, codec, items, empty))
    return work, max_seq, ", ".join(sorted(labels))


def _holds_lease(database: SharedDatabase, spool: Any, work: list[Any]) -> bool:
    """Whether _append_held may take ``work`` (it checks again, against the lease row)."""
    if lease.held(database) is None or not storage.can_append_held(spool):
        return False
    return not any(model not in database.tables for model, _, _, _ in work) and not (
        server_lease.applies(database, spool) and any(empty for _, _, _, empty in work)
    )


def _store(database: SharedDatabase, spool: Any, work: list[Any], fast: bool = True) -> None:
    """Under the lock: journal ``work``, claiming the lease if the fast path cannot.

    ``fast=False``: the fast path just failed for this batch (the lease moved
    on, or the server's lock was lost): claim at once rather than try it again.
    """
    if fast and _append_held(database, spool, work):
        return
    with transaction.atomic(using=spool.alias):
        lease.claim(database, spool.alias)
        for model, codec, items, empty in work:
            if empty:
                storage.delete_stored(database, model, spool.alias)
            elif model in database.tables and storage.append_journal(model, items, spool):
                database.tables[model].journaled(len(items))
            else:
                # No snapshot yet (or someone removed it): store the whole table.
                storage.write_snapshot(database, model, codec, spool.alias)


def _settle(database: SharedDatabase, group: GroupCommit) -> None:
    """Under the lock: delete the change records the last batch stored, and end its turn."""
    left = group.take_leftover()
    if left is None:
        return
    try:
        if left.last is not None:
            database.connection.execute(f"DELETE FROM {CHANGES} WHERE seq <= ?", (left.last,))
    finally:
        left.close()


def _settle_now(database: SharedDatabase, group: GroupCommit, compact: list[Any] | None = None) -> None:
    """After a batch written without the lock: settle it (unless a holder of the lock did),
    then compact the tables that need it (compaction.py: a large one in a thread of its own)."""
    with database.lock:
        _settle(database, group)
        due = compaction.due(database, compact or [])
    if due:
        compaction.start(database, due, settled, lambda small: _compact_now(database, small))


def _compact_now(database: SharedDatabase, models_due: list[Any]) -> None:
    """Under the lock and as the only writer: each table stored whole, its journal dropped."""
    with database.lock:
        settled(database)
        database.flushing = True
        try:
            spool = connections[conf.MEMDB_SPOOL_DATABASE]
            with sharing.of(database).spooling(database), lease.undone_on_error(database):
                for model in models_due:
                    compaction.compact_locked(database, model, spool)
        finally:
            database.flushing = False


def settled(database: SharedDatabase) -> None:
    """Under the lock: wait for a write of storage in flight, and delete the change records it stored.

    Afterwards, until the caller releases the lock, no flush of this process
    writes storage and the change records are exactly what is pending.
    """
    group = group_commit.of(database)
    group.quiesce()
    _settle(database, group)


_changed_rows: dict[rows.TableCodec, str] = {}


def _changed_rows_sql(codec: rows.TableCodec) -> str:
    """The current state of a table's changed rows (no row: deleted), for one flush."""
    sql = _changed_rows.get(codec)
    if sql is None:
        if len(_changed_rows) > 1000:  # codecs are rebuilt when a schema changes
            _changed_rows.clear()
        columns = ", ".join(f"t.{c}" for c in codec.columns)
        sql = _changed_rows[codec] = (
            f"SELECT c.pk, {columns} FROM (SELECT DISTINCT pk FROM {CHANGES} "
            f"WHERE tbl = ? AND seq <= ?) AS c LEFT JOIN {codec.quoted_table} AS t "
            f"ON t.{codec.columns[0]} = c.pk"
        )
    return sql


class _NotHeld(Exception):
    """An append of a several-table fast path found the lease moved on (or no snapshot)."""


def _append_held(database: SharedDatabase, spool: Any, work: list[Any]) -> bool:
    """The fast path: journal ``work`` without claiming the lease; False if it did not.

    Taken while this process holds the lease (lease.held: the claim also
    renews the row's expiry, which status reports) and every table has a
    snapshot: one autocommit statement for one table, one transaction for
    several (a commit stays atomic in storage). With the server's lock
    (server_lease.py) they are plain INSERTs on the lock's session, written
    only while that session holds the lock and claimed the lease. Otherwise
    each append is conditional on the lease row, so a lease that moved on (a
    takeover, a loader's bump) writes nothing. Either way the caller then
    takes the full path, whose claim refuses or bumps.
    """
    tables = database.tables
    held = lease.held(database)
    if held is None or any(model not in tables for model, _, _, _ in work):
        return False
    if not spool.in_atomic_block and server_lease.applies(database, spool):
        if any(empty for _, _, _, empty in work):
            return False  # removed under the lock, with a claim (_store)
        entries = [(model, items) for model, _, items, _ in work]
        if not server_lease.lock(spool.alias).append(database, spool, entries, storage.append_journal_plain):
            return False
        for model, items in entries:
            tables[model].journaled(len(items))
        return True
    if not storage.can_append_held(spool):
        return False
    if len(work) == 1:
        if not _write_held(spool, work[0], held):
            return False
    else:
        try:
            with transaction.atomic(using=spool.alias):
                for entry in work:
                    if not _write_held(spool, entry, held):
                        raise _NotHeld
        except _NotHeld:
            return False
    for model, _, items, empty in work:
        if empty:
            tables.pop(model, None)  # as storage.delete_stored does: its next rows start a snapshot
        else:
            tables[model].journaled(len(items))
    return True


def _write_held(spool: Any, entry: Any, held: tuple[str, str, int]) -> bool:
    """One table of the fast path: its journal entry, or its stored rows removed if it became empty."""
    model, _, items, empty = entry
    if empty:
        return storage.delete_stored_held(model, spool, held)
    return storage.append_journal_held(model, items, spool, held)


def compact(database: SharedDatabase, model: type[models.Model] | None = None) -> None:
    """Flush, then rewrite the snapshot of ``model`` (or of every persistent table)."""
    spool = connections[conf.MEMDB_SPOOL_DATABASE]
    with database.lock:
        flush(database)
        settled(database)
        if user_in_atomic(spool):
            raise PersistenceError(
                f"Cannot compact inside a transaction of the '{spool.alias}' database."
            )
        with sharing.of(database).spooling(database), lease.undone_on_error(database):
            for each in [model] if model else registry.persistent_models():
                if each not in database.failed:
                    compaction.compact_locked(database, each, spool)


def pending_changes(database: SharedDatabase) -> int:
    with database.lock:
        settled(database)
        return database.connection.execute(f"SELECT count(*) FROM {CHANGES}").fetchone()[0]
