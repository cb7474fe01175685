"""Compaction online: a table's journal folded into a new snapshot without stopping the process.

Rewriting the snapshot of a large table costs as long as reading and
encoding every row: about a second for 100,000 rows. Under the in-memory
lock every thread of the process would wait that long. So the compaction a
flush starts when a journal grew too long (``compact_online``) reads and
encodes the table in slices of bounded time (pacing.py), each under the
lock, and writes it without the lock. The explicit compaction of
``memdb_spool`` and the admin (spool.compact) still runs whole under the
lock (``compact_locked``): it promises a snapshot of every row and an empty
journal.

Why a snapshot read in slices is exact once restored. Before the first
slice, with nothing being written to storage (the lock held, the last batch
settled, and in host mode the host's spooling lock), the *watermark* W is the
highest id of the journal. Then:

* Every journal entry up to W holds states that were committed in memory
  before the first slice: each slice reads that state of a row or a later one.
* Every change committed later, or committed but not yet journaled at W, is
  journaled in an entry after W (ids only grow).
* A row that does not change while the slices run keeps its rowid and is read
  exactly once. A row that changes may be read in any of its states, twice
  or not at all; the entries after W hold its last state.
* A restore applies the snapshot with upserts, then the journal in order.

So the write replaces the snapshot and deletes the entries up to W, in one
transaction, and keeps those after it. It holds the turn to write storage
(group_commit.py) so that no batch of this process is written meanwhile,
and is abandoned (the next flush starts again) if the stored snapshot is not
the one seen at W: the table was emptied and its stored rows removed, or
another process of the host compacted it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections, models, transaction
from django.utils import timezone

from . import group_commit, lease, pacing, processors, reconnect, registry, rows, sharing, signals, storage
from .backend.shared import SharedDatabase
from .conf import conf
from .exceptions import MemDBError
from .models import PersistentJournal, PersistentStorage

logger = logging.getLogger("django_memdb")

# Names SQLite gives the rowid, unless a column of the table has taken them.
_ROWID_NAMES = ("rowid", "_rowid_", "oid")


def due(database: SharedDatabase, written: list[type[models.Model]]) -> list[type[models.Model]]:
    """The tables of ``written`` whose journal grew past the compaction bound."""
    minimum, ratio = conf.MEMDB_COMPACT_MIN_ROWS, conf.MEMDB_COMPACT_RATIO
    return [
        model for model in written
        if (state := database.tables.get(model)) and storage.needs_compaction(state, minimum, ratio)
    ]


def compact_locked(database: SharedDatabase, model: type[models.Model], spool: Any) -> None:
    """Under the lock and the turn to write storage: the table stored whole, its journal dropped."""
    codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
    with transaction.atomic(using=spool.alias):
        lease.claim(database, spool.alias)
        storage.store_whole(database, model, codec, spool.alias)


# A table of at most this many rows (stored and journaled) is compacted whole under the lock,
# in the flushing thread: that costs less than a slice. A larger one in a thread of its own.
SMALL_TABLE = 2000

_threads: set[threading.Thread] = set()
_threads_lock = threading.Lock()
_stopping = threading.Event()


class _Stopped(Exception):
    """The process is exiting: the compaction is abandoned (the journal is kept)."""


def start(
    database: SharedDatabase, models_due: list[type[models.Model]], settled: Callable[[SharedDatabase], None],
    compact_locked_now: Callable[[list[type[models.Model]]], None],
) -> None:
    """Compact the tables of ``models_due``: small ones now, under the lock, through
    ``compact_locked_now``; large ones in a thread that holds the lock a slice at a time.

    A thread that holds the lock (a TestCase, a transaction) compacts them all
    now, under its hold: no other thread could use the database meanwhile anyway.
    """
    holding = group_commit.holds(database.lock)
    with database.lock:
        busy = _compacting(database)  # a thread compacts them: its write is the next compaction
        models_due = [model for model in models_due if model not in busy and model not in database.failed]
        small = [model for model in models_due if holding or _rows(database.tables.get(model)) <= SMALL_TABLE]
        large = [] if _stopping.is_set() else [model for model in models_due if model not in small]
        busy.update(large)
    if large:
        thread = threading.Thread(
            target=_compact_all, args=(database, large, settled), name="django_memdb-compaction", daemon=True
        )
        with _threads_lock:
            _threads.add(thread)
        thread.start()
    if small:
        compact_locked_now(small)


def _rows(state: storage.TableState | None) -> int:
    return 0 if state is None else state.snapshot_rows + state.journal_rows


def _compact_all(
    database: SharedDatabase, models_due: list[type[models.Model]], settled: Callable[[SharedDatabase], None]
) -> None:
    spool = connections[conf.MEMDB_SPOOL_DATABASE]
    try:
        for model in models_due:
            try:
                _compact_online(database, model, spool, settled)
            except _Stopped:
                return
            except (DatabaseError, OSError, MemDBError) as exc:
                reconnect.reset_if_broken(spool)
                logger.error(
                    "django_memdb: compacting %s failed (%s); its journal is kept and compacted later.",
                    model._meta.label, exc,
                )
            except Exception:  # the thread must not die silently
                logger.exception("django_memdb: compacting %s failed; its journal is kept", model._meta.label)
    finally:
        with database.lock:
            _compacting(database).difference_update(models_due)
        with _threads_lock:
            _threads.discard(threading.current_thread())
        try:
            connections.close_all()  # this thread's connections
        except Exception:  # a dropped connection: gone all the same
            pass


def wait_idle(timeout: float) -> bool:
    """Wait for the compactions running in threads of this process; False if one is still running."""
    deadline = time.monotonic() + timeout
    while True:
        with _threads_lock:
            running = list(_threads)
        if not running:
            return True
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            with _threads_lock:
                return not _threads


def stop(timeout: float) -> None:
    """At exit: compactions in progress are abandoned between two slices; a write under way finishes."""
    _stopping.set()
    wait_idle(timeout)


def _after_fork_in_child() -> None:
    global _threads_lock
    _threads.clear()  # the parent's threads do not exist here
    _threads_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _compacting(database: SharedDatabase) -> set[type[models.Model]]:
    """The tables a thread of this process is compacting online (changed under the lock)."""
    found: set[type[models.Model]] | None = vars(database).get("_compacting")
    if found is None:
        found = vars(database).setdefault("_compacting", set())
    return found


class _Mark:
    """What storage held of a table when its slices started."""

    def __init__(self, watermark: int, snapshot: tuple[int, Any], state: storage.TableState) -> None:
        self.watermark = watermark
        self.snapshot = snapshot  # (id, inserted) of the snapshot row
        self.state = state
        self.journal_rows = state.journal_rows
        self.journal_entries = state.journal_entries


# Times a compaction waits for a write in flight without the lock before it waits under it.
_SETTLE_TRIES = 20


@contextmanager
def _settled_lock(database: SharedDatabase, settled: Callable[[SharedDatabase], None]) -> Iterator[None]:
    """The lock, held with nothing being written to storage (``settled``).

    A write in flight (a batch's journal entry, an emptied table's removal)
    is waited for before the lock is taken where possible: waited for under
    the lock, it would stop every thread's reads for as long as the write.
    """
    group = group_commit.of(database)
    for _ in range(_SETTLE_TRIES):
        group.quiesce()  # without the lock: the other threads go on meanwhile
        database.lock.acquire()
        if group.idle():
            break
        database.lock.release()  # a writer began in between
    else:
        database.lock.acquire()
    try:
        settled(database)
        yield
    finally:
        database.lock.release()


def _stored_snapshot(model: type[models.Model], using: str) -> tuple[int, Any] | None:
    application, modelname = registry.storage_key(model)
    found = (
        PersistentStorage.objects.using(using)
        .filter(application=application, modelname=modelname)
        .order_by("-id").values_list("id", "inserted").first()
    )
    return None if found is None else (found[0], found[1])


def _mark(
    database: SharedDatabase, model: type[models.Model], spool: Any, settled: Callable[[SharedDatabase], None]
) -> _Mark | None:
    """Under the lock, with nothing being written: the watermark and the snapshot it belongs to."""
    with _settled_lock(database, settled):
        state = database.tables.get(model)
        if state is None:
            return None
        with sharing.of(database).spooling(database):
            snapshot = _stored_snapshot(model, spool.alias)
            if snapshot is None:
                return None
            application, modelname = registry.storage_key(model)
            watermark = (
                PersistentJournal.objects.using(spool.alias)
                .filter(application=application, modelname=modelname)
                .aggregate(top=models.Max("id"))["top"] or 0
            )
        return _Mark(watermark, snapshot, state)


def _rowid(codec: rows.TableCodec) -> str:
    taken = {column.strip('"').lower() for column in codec.columns}
    for name in _ROWID_NAMES:
        if name not in taken:
            return name
    raise DatabaseError(f"{codec.label}: every name of the rowid is a column; compacted under the lock instead")


def _read_in_slices(database: SharedDatabase, codec: rows.TableCodec, encoded: bool) -> dict[Any, Any]:
    """The table's rows by key, read and encoded in slices of bounded time under the lock.

    ``encoded``: each row kept as its line of the stored JSON, a str, which the
    garbage collector does not track: 100,000 rows kept as tuples would make
    its full collections (which stop every thread) longer and more frequent.
    """
    rowid = _rowid(codec)
    sql = (
        f"SELECT {rowid}, {codec.select_columns} FROM {codec.quoted_table} "
        f"WHERE {rowid} > ? ORDER BY {rowid} LIMIT ?"
    )
    conn = database.connection
    pacer = pacing.Pacer()
    found: dict[Any, Any] = {}
    item, encode = codec.item, rows.encode_item
    last = -(1 << 63)
    while True:
        with database.lock:
            began = time.perf_counter()
            batch = conn.execute(sql, (last, pacer.size)).fetchall()
            # Encoded in the slice, under the lock: encoded after it, the rows would take the
            # GIL from whichever thread holds the lock next, and so lengthen its hold.
            for row in batch:
                # A row moved by a delete and an insert may come twice: the later read wins.
                key, values = row[1], row[1:]
                found.pop(key, None)
                found[key] = encode(item(values)) if encoded else values
            took = time.perf_counter() - began
        if len(batch) < pacer.size:
            return found
        last = batch[-1][0]
        if _stopping.is_set():
            raise _Stopped
        pacer.measured(len(batch), took)
        pacing.pause_after(took)


def _compact_online(
    database: SharedDatabase, model: type[models.Model], spool: Any, settled: Callable[[SharedDatabase], None]
) -> None:
    mark = _mark(database, model, spool, settled)
    if mark is None:
        return
    codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
    # Without store_save processors, the blob is the rows' JSON: encoded as they are read.
    encoded = not signals.store_save.has_listeners(model)
    table = _read_in_slices(database, codec, encoded)
    if encoded:
        blob, codec_name = rows.join_encoded(table.values()), ""
    else:
        blob, codec_name = processors.encode(model, map(codec.item, table.values()))
    group = group_commit.of(database)
    if _stopping.is_set():
        raise _Stopped
    with _settled_lock(database, settled):
        group.begin_turn()
        try:
            turn = sharing.of(database).spooling(database)
            turn.__enter__()
        except BaseException:
            group.end(0, stored=False)
            raise
    written = False
    try:
        with lease.undone_on_error(database):
            written = reconnect.retry_if_dropped(
                spool, lambda: _write(database, model, spool, mark, blob, codec_name, len(table))
            )
    finally:
        group.end(0, stored=False, leftover=group_commit.Leftover(None, lambda: turn.__exit__(None, None, None)))
        with database.lock:
            settled(database)  # ends the turn (the host's spooling lock)
    if written:
        logger.info("django_memdb: compacted %s into a snapshot of %d rows", model._meta.label, len(table))
    else:
        logger.debug("django_memdb: compaction of %s abandoned: its stored snapshot changed", model._meta.label)


def _write(
    database: SharedDatabase, model: type[models.Model], spool: Any, mark: _Mark, blob: Any, codec_name: str,
    count: int,
) -> bool:
    """As the only writer of storage: the new snapshot, and the journal up to the watermark dropped."""
    if database.tables.get(model) is not mark.state:
        return False
    application, modelname = registry.storage_key(model)
    with transaction.atomic(using=spool.alias):
        if _stored_snapshot(model, spool.alias) != mark.snapshot:
            return False
        lease.claim(database, spool.alias)
        PersistentStorage.objects.using(spool.alias).filter(id=mark.snapshot[0]).update(
            codec=codec_name, data=blob, rows=count, inserted=timezone.now()
        )
        PersistentJournal.objects.using(spool.alias).filter(
            application=application, modelname=modelname, id__lte=mark.watermark
        ).delete()
    state = mark.state
    rows_left = max(0, state.journal_rows - mark.journal_rows)
    entries_left = max(0, state.journal_entries - mark.journal_entries)
    state.snapshot_rows = count
    state.journal_rows = rows_left
    state.journal_entries = entries_left if rows_left else 0
    return True
