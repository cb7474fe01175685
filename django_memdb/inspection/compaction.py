"""``memdb_spool`` and the admin's compact action: each table rewritten as one snapshot."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import models
from django.db.models.functions import Length

from .. import lifecycle, registry
from ..conf import conf
from .formatting import format_size, plural
from .reading import Progress, _quiet, _stored, label, require_storage


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
