"""Tables with a maximum number of rows: ``memdb_max_rows`` and ``memdb_eviction`` on a model.

The bound is kept by a trigger of the table itself, in the statement that
inserts: every write path (ORM, bulk_create, raw SQL through the alias) and
every process of a host is covered, and no transaction ever commits more
rows than the bound. Eviction is therefore an SQL delete: the capture
triggers journal it as any delete, but Django sends no ``pre_delete`` /
``post_delete`` for it and runs no ``on_delete``; check E015 refuses a
database-level foreign key to a bounded table.

``"oldest"`` evicts in primary key order (insertion order for the default
AutoField). ``"lru"`` evicts the rows this process used least recently: an
insert and every instance the ORM loads (``post_init``) count as a use,
kept in memory per process, never written to the table (reads stay reads,
and a persistent table journals no read). Rows this process never used
(inserted by another process of the host and never loaded here) go after
them, in primary key order: in host mode the order is each process's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from django.db import connections, models
from django.db.models.signals import post_init

from . import registry
from .conf import conf

OLDEST = "oldest"
LRU = "lru"
EVICTIONS = (OLDEST, LRU)


def max_rows(model: Any) -> int | None:
    """The bound of an in-memory model, None for any other model."""
    bound = getattr(model, "memdb_max_rows", None)
    if bound is None or not registry.is_in_memory(model) or model._meta.auto_created:
        return None
    return bound if isinstance(bound, int) and not isinstance(bound, bool) and bound > 0 else None


def eviction(model: Any) -> str:
    return str(getattr(model, "memdb_eviction", OLDEST))


def bounded_models() -> list[type[models.Model]]:
    return [model for model in registry.in_memory_models() if max_rows(model) is not None]


def _quote(name: str) -> str:
    return '"{}"'.format(name.replace('"', '""'))


def _literal(value: str) -> str:
    return "'{}'".format(value.replace("'", "''"))


def trigger_sql(model: type[models.Model]) -> list[str]:
    """The SQLite triggers that evict down to the bound after each inserted row."""
    bound = max_rows(model)
    assert bound is not None
    table, pk = _quote(model._meta.db_table), _quote(model._meta.pk.column)
    excess = f"(SELECT count(*) FROM {table}) - {bound:d}"
    by_age = f"DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM {table} ORDER BY {pk} LIMIT max(0, {excess})); "
    if eviction(model) != LRU:
        return [f"AFTER INSERT ON {table} WHEN {excess} > 0 BEGIN {by_age}END"]
    name = _literal(model._meta.db_table)
    # The least recently used rows this process knows, then (rows it does
    # not know, or a stale key) by age, so that the bound always holds.
    least_used = (
        f"DELETE FROM {table} WHERE {pk} IN "
        f"(SELECT value FROM json_each(django_memdb_victims({name}, {excess}))); "
    )
    return [
        f"AFTER INSERT ON {table} BEGIN SELECT django_memdb_used({name}, NEW.{pk}); {least_used}{by_age}END",
        f"AFTER DELETE ON {table} BEGIN SELECT django_memdb_forgotten({name}, OLD.{pk}); END",
    ]


def _trigger_name(model: type[models.Model], sql: str) -> str:
    # The SQL is in the name: a changed bound replaces the trigger.
    return f"django_memdb_{model._meta.db_table}_bound_{hashlib.sha256(sql.encode()).hexdigest()[:12]}"


def install_triggers(connection: sqlite3.Connection, model_list: Iterable[type[models.Model]]) -> None:
    """Create each bounded table's triggers, replacing those made for another bound."""
    existing = {
        name: table
        for name, table in connection.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
    }
    for model in model_list:
        table = model._meta.db_table
        wanted = {_trigger_name(model, sql): sql for sql in trigger_sql(model)} if max_rows(model) else {}
        prefix = f"django_memdb_{table}_bound_"
        for name, on in existing.items():
            if on == table and name.startswith(prefix) and name not in wanted:
                connection.execute(f"DROP TRIGGER IF EXISTS {_quote(name)}")
        for name, sql in wanted.items():
            if name not in existing:
                connection.execute(f"CREATE TRIGGER IF NOT EXISTS {_quote(name)} {sql}")
        if wanted and eviction(model) == LRU:
            # What the table holds now counts as used once, oldest first.
            pk = _quote(model._meta.pk.column)
            for (key,) in connection.execute(f"SELECT {pk} FROM {_quote(table)} ORDER BY {pk}").fetchall():
                used(table, key)


# Least recently used order, per process: table -> keys, least recent first.
_recent: dict[str, OrderedDict[Any, None]] = {}


def used(table: str, key: Any) -> None:
    keys = _recent.setdefault(table, OrderedDict())
    keys[key] = None
    keys.move_to_end(key)


def _victims(table: str, count: int) -> str:
    keys = _recent.get(table)
    taken = []
    while keys and count > 0:
        taken.append(keys.popitem(last=False)[0])
        count -= 1
    return json.dumps(taken)


def _forgotten(table: str, key: Any) -> None:
    keys = _recent.get(table)
    if keys is not None:
        keys.pop(key, None)


def register_functions(connection: sqlite3.Connection) -> None:
    """The functions the LRU triggers call, on every connection that may insert."""
    connection.create_function("django_memdb_used", 2, used)
    connection.create_function("django_memdb_forgotten", 2, _forgotten)
    connection.create_function("django_memdb_victims", 2, _victims)


def _loaded(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    key = instance.pk
    if key is None:
        return
    if not isinstance(key, (int, str)):
        key = sender._meta.pk.get_db_prep_value(key, connections[conf.MEMDB_NAME])
    used(sender._meta.db_table, key)


def connect_receivers() -> None:
    """From AppConfig.ready(): instances the ORM loads count as uses of LRU tables."""
    for model in bounded_models():
        if eviction(model) == LRU:
            post_init.connect(_loaded, sender=model, weak=False, dispatch_uid=f"django_memdb.lru.{model._meta.label}")


def _after_fork_in_child() -> None:
    _recent.clear()  # the child's own uses from now on


os.register_at_fork(after_in_child=_after_fork_in_child)
