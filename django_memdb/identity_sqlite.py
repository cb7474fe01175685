"""The SQLite side of the identity map: triggers on mapped tables, other processes' commits.

Triggers tell the identity map which rows of mapped tables changed.

They call a Python function of the connection, in the writing thread, for
every inserted, updated or deleted row, whatever wrote it (ORM, bulk,
cascades, raw SQL). They are kept apart from the capture triggers of
persistent tables (capture.py), which a restore drops and reinstalls: a
restore's writes are seen here too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from django.apps import apps
from django.db import models

from . import identity
from .identity_manager import info_for

FUNCTION = "django_memdb_identity"


def _quote(name: str) -> str:
    return '"{}"'.format(name.replace('"', '""'))


def _literal(value: str) -> str:
    return "'{}'".format(value.replace("'", "''"))


def mapped_models() -> list[type[models.Model]]:
    """Mapped models of the installed apps (proxies included)."""
    return [model for model in apps.get_models() if identity.is_mapped(model)]


@lru_cache(maxsize=1)
def _index() -> dict[str, list[type[models.Model]]]:
    """Per table: the mapped models whose rows it holds (a parent's table holds its children's)."""
    found: dict[str, list[type[models.Model]]] = {}
    for model in mapped_models():
        concrete = model._meta.concrete_model or model
        for owner in (concrete, *concrete._meta.get_parent_list()):
            found.setdefault(owner._meta.db_table, []).append(model)
    return found


def tables() -> list[str]:
    return list(_index())


def clear_cache() -> None:
    _index.cache_clear()


def _trigger_names(table: str) -> tuple[str, str, str]:
    return (f"django_memdb_idmap_{table}_ins", f"django_memdb_idmap_{table}_upd", f"django_memdb_idmap_{table}_del")


def _pk_column(table: str) -> str:
    first = _index()[table][0]
    model = first._meta.concrete_model or first
    for owner in (model, *model._meta.get_parent_list()):
        if owner._meta.db_table == table:
            return str(owner._meta.pk.column)
    raise LookupError(table)


def install(connection: sqlite3.Connection, existing: Iterable[str]) -> None:
    """Create the triggers of every mapped table that exists (idempotent)."""
    present = set(existing)
    for table in tables():
        if table not in present:
            continue
        pk = _quote(_pk_column(table))
        call = f"SELECT {FUNCTION}({_literal(table)}, %s); "
        ins, upd, delete = (_quote(name) for name in _trigger_names(table))
        quoted = _quote(table)
        # A new row cannot be mapped; only one that replaces a row (INSERT OR
        # REPLACE, whose delete fires no trigger) needs telling, so plain inserts
        # never call into Python.
        connection.execute(
            f"CREATE TRIGGER IF NOT EXISTS {ins} BEFORE INSERT ON {quoted} "
            f"WHEN EXISTS (SELECT 1 FROM {quoted} WHERE {pk} = NEW.{pk}) BEGIN {call % ('NEW.' + pk)}END"
        )
        connection.execute(
            f"CREATE TRIGGER IF NOT EXISTS {upd} AFTER UPDATE ON {quoted} BEGIN "
            f"{call % ('OLD.' + pk)}"
            f"SELECT {FUNCTION}({_literal(table)}, NEW.{pk}) WHERE OLD.{pk} IS NOT NEW.{pk}; END"
        )
        connection.execute(
            f"CREATE TRIGGER IF NOT EXISTS {delete} AFTER DELETE ON {quoted} BEGIN {call % ('OLD.' + pk)}END"
        )


# By id, holding the connection so that its id is never reused (they live for the process).
_registered: dict[int, sqlite3.Connection] = {}


def register(connection: sqlite3.Connection, alias: str) -> None:
    """Give ``connection`` the function the triggers call, once per SQLite connection.

    Once: SQLite refuses to redefine a function while another thread's
    statement runs on the shared connection.
    """
    if id(connection) in _registered:
        return
    _registered[id(connection)] = connection

    def row_changed(table: str, raw_pk: Any) -> None:
        # An exception here would fail the user's write: forget more instead.
        try:
            in_transaction = connection.in_transaction
            for model in _index().get(table, ()):
                pk = info_for(model).clean(raw_pk)
                if pk is None:  # a key the field cannot read: forget the whole model
                    identity.clear(alias, model)
                    continue
                identity.changed(alias, model, pk, in_transaction)
        except Exception:
            identity.clear(alias)

    connection.create_function(FUNCTION, 2, row_changed)


class _Validator:
    """Callable kept once per database: a new one would forget what it saw."""

    def __init__(self, database: Any, check: Callable[[], None]) -> None:
        self.database = database
        self.check = check

    def __call__(self) -> None:
        self.check()


def host_validator(database: Any, alias: str) -> Callable[[], None]:
    """Host mode: forget the alias's rows when another process committed to the shared file.

    ``PRAGMA data_version`` changes when another connection committed; the
    commits of this process's own (shared) connection are seen by the triggers.
    """
    seen: list[int | None] = [None]

    def validate() -> None:
        with database.lock:
            version = database.connection.execute("PRAGMA data_version").fetchall()[0][0]
        if version != seen[0]:
            seen[0] = version
            identity.clear(alias)

    return _Validator(database, validate)
