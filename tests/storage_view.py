"""What storage holds for a table, and what memory holds, as comparable dicts."""

from __future__ import annotations

from typing import Any

from django.db import connections, models

from django_memdb import processors, registry, rows
from django_memdb.models import PersistentJournal, PersistentStorage


def stored(model: type[models.Model]) -> dict[Any, dict[str, Any]]:
    """pk -> fields, as a restore would rebuild the table from snapshot and journal."""
    application, modelname = registry.storage_key(model)
    state: dict[Any, dict[str, Any]] = {}
    snapshots = PersistentStorage.objects.filter(application=application, modelname=modelname)
    journal = PersistentJournal.objects.filter(application=application, modelname=modelname)
    for entry in [*snapshots.order_by("id"), *journal.order_by("id")]:
        for item in processors.decode(model, application, modelname, entry.data, entry.codec):
            if item.get("deleted"):
                state.pop(item["pk"], None)
            else:
                state[item["pk"]] = item["fields"]
    return state


def in_memory(model: type[models.Model]) -> dict[Any, dict[str, Any]]:
    codec = rows.codec_for(model, connections["django_memdb"])
    with connections["django_memdb"].cursor() as cursor:
        cursor.execute(f"SELECT {codec.select_columns} FROM {codec.quoted_table}")
        return {item["pk"]: item["fields"] for item in map(codec.item, cursor.fetchall())}


def snapshot_count(model: type[models.Model]) -> int:
    application, modelname = registry.storage_key(model)
    return PersistentStorage.objects.filter(application=application, modelname=modelname).count()


def assert_persisted(*model_list: type[models.Model]) -> None:
    """Storage equals memory, with exactly one snapshot row per non-empty table."""
    for model in model_list:
        memory = in_memory(model)
        assert stored(model) == memory, model
        assert snapshot_count(model) == (1 if memory else 0), model
