"""Cluster mode: journal the changes every process recorded on the server.

Any process may flush, one at a time under the server lock, so journal
entries are written in the order their rows were read and a later entry
never holds an older state. Change rows are deleted only after the journal
is committed (MEMORY tables cannot roll a deletion back): a crash between the
two journals the same rows again, which replays to the same state.

Group commit: a flush journals every change pending on the server, whoever
made it. A commit under the ``commit`` policy only waits for its own: each
change row names the server connection that made it, so a commit whose rows
are gone (journaled by another thread or process, whose journal committed
before it deleted them) returns without taking the server lock, or at once
after taking it; and a commit that made no change to a persistent table
(an in-memory model only) takes no lock at all.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import Any

from django.db import connections, models, transaction

from .. import reconnect, registry, rows, storage
from ..conf import DURABILITY_COMMIT, conf
from ..spool import flush_after_spool_commit, flush_failed
from ..transactions import user_in_atomic
from . import dialect, engines
from .server import Hold, server_lock
from .state import ClusterState

logger = logging.getLogger("django_memdb")

BATCH = 500


def changes_committed(database: ClusterState, raise_errors: bool = True) -> None:
    if conf.MEMDB_DURABILITY == DURABILITY_COMMIT:
        flush(database, raise_errors=raise_errors, own=True)


def flush(
    database: ClusterState, raise_errors: bool = True, forced: bool = False, log: bool = True, own: bool = False
) -> int:
    """Journal every pending change of the cluster; returns the number of rows journaled.

    ``own``: only when changes of this thread's connections are among them
    (and if they are, journal them all); a failed flush or changes left for
    the spool's commit make the next flush whole again.
    ``log``: whether a failure is logged (the exit handler reports its own).
    """
    wrapper = engines.alias_wrapper()
    spool = connections[conf.MEMDB_SPOOL_DATABASE]
    if not (database.ready or forced) or wrapper.memdb_flushing:
        return 0
    if not wrapper.memdb_effectively_committed():
        return 0  # its commit hook flushes
    if user_in_atomic(spool):
        flush_after_spool_commit(database, spool)
        return 0
    with database.lock:
        # Another thread's flush may have journaled this thread's changes meanwhile.
        writers = set(wrapper.memdb_writers) if own and not (database.dirty or database.pending_error) else None
        wrapper.memdb_flushing = True
        database.dirty = False
        try:
            def once() -> int:
                with server_lock(wrapper, only_if=_pending_query(wrapper, writers)) as hold:
                    return _flush(database, wrapper, spool, hold, writers) if hold.taken else 0

            count = reconnect.retry_if_dropped(spool, once)
            database.pending_error = None
            wrapper.memdb_writers.clear()
            return count
        except Exception as exc:
            # The in-memory tables are on a server too: a dropped connection there recovers as well.
            reconnect.reset_if_broken(wrapper)
            return flush_failed(database, exc, spool, raise_errors, log=log)
        finally:
            wrapper.memdb_flushing = False


def _mine(writers: set[int]) -> str:
    """A condition on change rows: made by one of ``writers`` (server connection ids, integers)."""
    return f"conn IN ({', '.join(str(int(writer)) for writer in sorted(writers))})" if writers else "false"


def _pending_query(wrapper: Any, writers: set[int] | None) -> str:
    """A query returning a row if changes are pending (of ``writers`` only, unless None)."""
    where = "" if writers is None else f" WHERE {_mine(writers)}"
    return f"SELECT 1 FROM {wrapper.ops.quote_name(dialect.CHANGES)}{where} LIMIT 1"


def _chunks(values: list[Any], size: int = BATCH) -> Any:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _changed_items(wrapper: Any, codec: rows.TableCodec, keys: set[str]) -> list[dict[str, Any]]:
    """The current state of the changed rows: their items, or a deletion for each one gone."""
    params = [codec.pk.get_db_prep_value(codec.pk.to_python(key), wrapper) for key in keys]
    items, seen = [], set()
    with wrapper.cursor() as cursor:
        for chunk in _chunks(params):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {codec.select_columns} FROM {codec.quoted_table} WHERE {codec.columns[0]} IN ({marks})",
                chunk,
            )
            for row in cursor.fetchall():
                item = codec.item(row)
                seen.add(item["pk"])
                items.append(item)
    for value in params:
        pk = codec.pk_to_json(value)
        if pk not in seen:
            items.append({"model": codec.label, "pk": pk, "fields": {}, "deleted": True})
    return items


def _flush(database: ClusterState, wrapper: Any, spool: Any, hold: Hold, writers: set[int] | None) -> int:
    """Under the server lock: read the changes and their rows, journal them, delete the changes.

    The last DELETE goes with the release of the lock (``hold``): after the
    journal committed, in one round trip where the server allows it.
    """
    changes = wrapper.ops.quote_name(dialect.CHANGES)
    with wrapper.cursor() as cursor:
        if writers is None:
            cursor.execute(f"SELECT seq, tbl, pk FROM {changes}")
            records = cursor.fetchall()
        else:
            cursor.execute(f"SELECT seq, tbl, pk, {_mine(writers)} FROM {changes}")
            found = cursor.fetchall()
            if not any(record[3] for record in found):
                return 0  # journaled by another process while this one waited for the lock
            records = [record[:3] for record in found]
    keys: dict[str, set[str]] = {}
    whole: set[str] = set()  # tables truncated: stored whole again
    for _, table, pk in records:
        if pk is None:
            whole.add(table)
        keys.setdefault(table, set()).add(pk)
    work: list[tuple[type[models.Model], rows.TableCodec, list[dict[str, Any]] | None, bool]] = []
    for table, pks in keys.items():
        model = registry.model_for_table(table)
        if model is None or model in database.failed:
            continue
        codec = rows.codec_for(model, wrapper)
        items = None if table in whole else _changed_items(wrapper, codec, pks)
        empty = (items is None or any(item.get("deleted") for item in items)) and not storage.has_rows(database, codec)
        work.append((model, codec, items, empty))
    def store(model: type[models.Model], codec: rows.TableCodec, items: list[Any] | None, empty: bool) -> int:
        if empty:
            storage.delete_stored(database, model, spool.alias)
            return 0
        if items is not None and model in database.tables and storage.append_journal(model, items, spool):
            database.tables[model].journaled(len(items))
            return len(items)
        return storage.write_snapshot(database, model, codec, spool.alias)

    if len(work) == 1:
        count = store(*work[0])  # each of those is one statement or its own transaction
    else:
        with transaction.atomic(using=spool.alias):  # a commit that spans tables is stored whole
            count = sum(store(*each) for each in work)
    deletes = [
        f"DELETE FROM {changes} WHERE seq IN ({', '.join(str(int(seq)) for seq in chunk)})"
        for chunk in _chunks([record[0] for record in records])
    ]
    if deletes:
        with wrapper.cursor() as cursor:
            for statement in deletes[:-1]:
                cursor.execute(statement)
        hold.release_after = deletes[-1]
    for model, codec, _, _ in work:
        state = database.tables.get(model)
        if state and storage.needs_compaction(state, conf.MEMDB_COMPACT_MIN_ROWS, conf.MEMDB_COMPACT_RATIO):
            compact_table(database, wrapper, spool, model, codec)
    return count


def compact_table(
    database: ClusterState, wrapper: Any, spool: Any, model: type[models.Model], codec: rows.TableCodec
) -> None:
    """Rewrite the snapshot of one table; called with the server lock held."""
    with transaction.atomic(using=spool.alias):
        storage.store_whole(database, model, codec, spool.alias)


def compact(database: ClusterState, model: type[models.Model] | None = None) -> None:
    """Flush, then rewrite the snapshot of ``model`` (or of every persistent table)."""
    wrapper = connections[conf.MEMDB_NAME]
    spool = connections[conf.MEMDB_SPOOL_DATABASE]
    flush(database)
    with database.lock, server_lock(wrapper):
        for each in [model] if model else registry.persistent_models():
            if each not in database.failed:
                compact_table(database, wrapper, spool, each, rows.codec_for(each, wrapper))

