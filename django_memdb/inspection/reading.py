"""Reading memory and storage for the reports: what a restore would load, and how to name a model.

Memory is read under the database lock, so a table is seen in one committed
state, and compared with what storage would restore.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import connections, models

from .. import processors, registry, restore, rows, spool, storage
from ..backend.shared import SharedDatabase
from ..capture import CHANGES
from ..conf import conf
from ..exceptions import MemDBError
from ..models import PersistentJournal, PersistentStorage

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
    """Called with the database lock held; a write of storage in flight is waited for first."""
    spool.settled(database)
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
