"""The message of a stored blob that does not decode: which chain wrote what, which is connected now.

Most such errors come from a project that changed its processors while
storage still holds data written by the old ones; the message says so, with
what storage holds per chain, and the way out.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import DatabaseError, transaction
from django.db.models import Count, Sum

from .conf import conf
from .models import PersistentJournal, PersistentStorage


def _chain(codec: str) -> str:
    return f"[{codec}]" if codec and codec != "[]" else "none"


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def stored_by_chain(application: str, modelname: str) -> str:
    """What storage holds of a table, per recorded chain, in one sentence per chain."""
    using = conf.MEMDB_SPOOL_DATABASE
    where = {"application": application, "modelname": modelname}
    parts: dict[str, list[str]] = defaultdict(list)
    try:
        # A savepoint: a failed read must not spoil a transaction around the restore.
        with transaction.atomic(using=using):
            for codec, rows in PersistentStorage.objects.using(using).filter(**where).values_list("codec", "rows"):
                size = "" if rows is None else f" of {_rows(rows)}"
                parts[_chain(codec)].append(f"the snapshot{size}")
            journal = (
                PersistentJournal.objects.using(using).filter(**where).values("codec")
                .annotate(entries=Count("id"), rows=Sum("rows")).order_by("codec")
            )
            for group in journal:
                entries = group["entries"]
                noun = "journal entry" if entries == 1 else "journal entries"
                parts[_chain(group["codec"])].append(f"{entries} {noun} of {_rows(group['rows'] or 0)}")
    except DatabaseError as exc:
        return f"(What storage holds could not be read: {exc}.)"
    return " ".join(
        f"Written with {'chain ' + chain if chain != 'none' else 'no processors'}: {' and '.join(what)}."
        for chain, what in parts.items()
    ) or "Storage holds nothing more of it now."


def message(label: str, problem: str, recorded: str, connected: str, stored: str) -> str:
    """``recorded``: the codec of the blob; ``connected``: the store_load chain now (both may be '')."""
    if recorded and not connected:
        why = "Nothing is connected to decode it."
    elif connected and not recorded:
        why = "It was stored without processors, and the connected ones are given JSON they did not encode."
    elif recorded == connected:
        why = (
            "The two are the same: the blob may be corrupt (fix or delete it in the admin, PersistentStorage "
            "or PersistentJournal), or the processors changed what they do."
        )
    else:
        why = "Unless the connected processors decode what the recorded ones encoded, the processors changed."
    return (
        f"Cannot restore {label}: {problem}. Chain recorded in storage for this data: {_chain(recorded)}; "
        f"store_load chain connected now: {_chain(connected)}. {why} {stored} "
        f"Way out: connect store_load processors that decode every chain above (one processor may "
        f"decode both the old and the new format), then restart the process or call "
        f"django_memdb.tools.restore.restore() in it; `manage.py memdb_restore --model {label} "
        f"--dry-run` checks the stored data. To store everything with the chain connected now, "
        f"then run `manage.py memdb_spool --rewrite --model {label}`. The stored rows were kept."
    )
