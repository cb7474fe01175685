"""``memdb_restore``: a dry run of what storage holds, or memory replaced with it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connections, models

from .. import lifecycle, restore, rows, storage
from ..backend.shared import SharedDatabase
from ..conf import conf
from ..exceptions import MemDBError
from .formatting import plural
from .reading import Progress, _quiet, _stored, label, require_storage, stored_state

logger = logging.getLogger("django_memdb")


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
