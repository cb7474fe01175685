"""Re-encoding stored tables with the processors connected now (``memdb_spool --rewrite``).

A project that adds, removes or changes a processor still has data written by
the old chain. A rewrite compacts each table into a new snapshot through the
store_save chain of now, but only once nothing can be lost by it: memory must
match storage (so the stored data was restored, with the store_load chain of
now, which must read the old data), and the table must come back unchanged
through the new store_save and store_load chains. The old blobs are replaced
only then, and storage is verified again afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connections, models

from . import inspection, lifecycle, processors, registry, restore, rows
from .conf import conf
from .exceptions import MemDBError
from .models import PersistentJournal, PersistentStorage


class RewriteRefused(MemDBError):
    """Storage was left as it was: the message says which tables and why."""


@dataclass
class RewriteResult:
    model: str
    chains_before: list[str] = field(default_factory=list)
    chain_now: str = ""
    compacted: inspection.CompactResult | None = None

    def summary(self) -> str:
        before = ", ".join(f"[{chain}]" if chain else "no processors" for chain in self.chains_before)
        now = f"[{self.chain_now}]" if self.chain_now else "no processors"
        assert self.compacted is not None
        if self.compacted.removed or self.compacted.skipped:
            return self.compacted.summary()
        return f"{self.compacted.summary()}; written with {now} (was: {before or 'nothing stored'})"


def _chains_before(model: type[models.Model], using: str) -> list[str]:
    application, modelname = registry.storage_key(model)
    where = {"application": application, "modelname": modelname}
    codecs = [
        *PersistentStorage.objects.using(using).filter(**where).order_by("id").values_list("codec", flat=True),
        *PersistentJournal.objects.using(using).filter(**where).order_by("id").values_list("codec", flat=True),
    ]
    # In order of first use, 0.0.6's "[]" being no processors.
    return list(dict.fromkeys("" if codec == "[]" else codec for codec in codecs))


def _round_trip(model: type[models.Model]) -> tuple[str | None, str]:
    """(why the table would not come back unchanged through the chains of now, or None; the new codec)."""
    database = lifecycle.current_database()
    name = inspection.label(model)
    application, modelname = registry.storage_key(model)
    codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
    with database.lock:
        cursor = database.connection.execute(f"SELECT {codec.select_columns} FROM {codec.quoted_table}")
        items = [codec.item(row) for row in cursor.fetchall()]
    try:
        blob, recorded = processors.encode(model, items)
        decoded = list(processors.decode(model, application, modelname, blob, recorded))
        expected = [restore.item_params(codec, item, name, False) for item in items]
        got = [restore.item_params(codec, item, name, False) for item in decoded]
    except MemDBError as exc:
        return f"the chains connected now cannot store and read it back: {exc}", ""
    if got != expected:
        return (
            f"the store_load chain connected now does not give back what the store_save chain "
            f"connected now wrote ({len(got)} rows read back of {len(expected)}, or values differ)"
        ), recorded
    return None, recorded


def rewrite(
    model_list: Iterable[type[models.Model]] | None = None,
    progress: inspection.Progress | None = None,
) -> tuple[int, list[RewriteResult]]:
    """Re-encode each table's stored data with the chain connected now; (rows flushed, results)."""
    progress = progress or (lambda message: None)
    using = conf.MEMDB_SPOOL_DATABASE
    selected = list(model_list) if model_list is not None else list(registry.persistent_models())
    refusals = []
    # Flushes first: what is pending is stored (with the chain of now) and compared too.
    for check in inspection.verify(selected, flush=True, progress=progress):
        if not check.ok:
            refusals.append(
                f"{check.summary()}. Memory must hold exactly what storage holds: connect store_load "
                f"processors that read the stored data (the old chain), restart, and run this again"
            )
    results = []
    for model in selected:
        progress(f"Checking the chains of now on {inspection.label(model)}")
        problem, recorded = _round_trip(model)
        if problem:
            refusals.append(
                f"{inspection.label(model)}: {problem}; connect store_save and store_load processors "
                f"that undo each other"
            )
        results.append(RewriteResult(model=inspection.label(model), chains_before=_chains_before(model, using),
                                     chain_now=recorded))
    if refusals:
        raise RewriteRefused("Nothing was rewritten:\n" + "\n".join(refusals))
    flushed, compacted = inspection.compact(selected, progress=progress)
    for result, done in zip(results, compacted, strict=True):
        result.compacted = done
    broken = [check.summary() for check in inspection.verify(selected) if not check.ok]
    if broken:
        raise MemDBError(
            "After the rewrite storage does not match memory (memory still holds every row: run "
            "`manage.py memdb_spool` again once the processors are fixed, before this process "
            "exits):\n" + "\n".join(broken)
        )
    return flushed, results
