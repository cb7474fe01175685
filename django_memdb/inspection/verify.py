"""``memdb_verify``: each table in memory compared with what storage would restore, row by row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connections, models

from .. import lifecycle, registry, rows
from ..backend.shared import SharedDatabase
from ..conf import conf
from ..exceptions import MemDBError
from .formatting import plural
from .reading import FIRST, Progress, _memory_rows, _pending_by_table, _quiet, label, require_storage, stored_state


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
