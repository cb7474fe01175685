"""Change capture inside the in-memory database.

Triggers on every persistent table append the primary key of each changed row
to one change table, in the same transaction as the change: a rollback also
takes back the record of it, and every write path (ORM, bulk, cascades, raw
SQL) is seen. A flush reads the changed rows and deletes the records it took.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from django.db import models

CHANGES = "django_memdb_changes"

_CHANGE_TABLE = (
    f'CREATE TABLE IF NOT EXISTS "{CHANGES}" '
    "(seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk NOT NULL)"
)


def _quote(name: str) -> str:
    return '"{}"'.format(name.replace('"', '""'))


def _literal(value: str) -> str:
    return "'{}'".format(value.replace("'", "''"))


def _trigger_names(table: str) -> tuple[str, str, str]:
    return (f"django_memdb_{table}_ins", f"django_memdb_{table}_upd", f"django_memdb_{table}_del")


_MARK = "SELECT django_memdb_changed(); "


def _record(table: str, key: str) -> str:
    # Concatenated, never %-formatted: the table name may hold a "%".
    return f"INSERT INTO {CHANGES} (tbl, pk) VALUES ({_literal(table)}, {key}); "


def install_change_table(connection: sqlite3.Connection) -> None:
    connection.execute(_CHANGE_TABLE)


def install_triggers(connection: sqlite3.Connection, model_list: Iterable[type[models.Model]]) -> None:
    """Create the capture triggers (idempotent: also after a table was rebuilt)."""
    for model in model_list:
        table = model._meta.db_table
        pk = _quote(model._meta.pk.column)
        ins, upd, delete = (_quote(name) for name in _trigger_names(table))
        quoted = _quote(table)
        connection.execute(
            f"CREATE TRIGGER IF NOT EXISTS {ins} AFTER INSERT ON {quoted} "
            f"BEGIN {_record(table, 'NEW.' + pk)}{_MARK}END"
        )
        connection.execute(
            f"CREATE TRIGGER IF NOT EXISTS {upd} AFTER UPDATE ON {quoted} BEGIN "
            f"{_record(table, 'NEW.' + pk)}"
            f"INSERT INTO {CHANGES} (tbl, pk) SELECT {_literal(table)}, OLD.{pk} "
            f"WHERE OLD.{pk} IS NOT NEW.{pk}; {_MARK}END"
        )
        connection.execute(
            f"CREATE TRIGGER IF NOT EXISTS {delete} AFTER DELETE ON {quoted} "
            f"BEGIN {_record(table, 'OLD.' + pk)}{_MARK}END"
        )


def _aside(table: str) -> str:
    return "temp." + _quote(f"django_memdb_seeded_{table}")


def with_rows(connection: sqlite3.Connection, model_list: Iterable[type[models.Model]]) -> list[type[models.Model]]:
    """The models whose table holds rows (before the restore: rows that migrations seeded)."""
    return [
        model for model in model_list
        if connection.execute(f"SELECT 1 FROM {_quote(model._meta.db_table)} LIMIT 1").fetchone() is not None
    ]


def _columns(model: type[models.Model]) -> str:
    # Generated columns cannot be inserted: SQLite computes them again.
    return ", ".join(
        _quote(field.column) for field in model._meta.concrete_fields if not getattr(field, "generated", False)
    )


def set_aside(connection: sqlite3.Connection, model_list: Iterable[type[models.Model]]) -> None:
    """Move the rows that migrations left in these tables (a seed) into temporary
    tables, so that the restore loads storage into empty tables. Call before
    the triggers exist: nothing is recorded."""
    for model in model_list:
        table = _quote(model._meta.db_table)
        connection.execute(
            f"CREATE TEMP TABLE {_aside(model._meta.db_table)} AS SELECT {_columns(model)} FROM {table}"
        )
        connection.execute(f"DELETE FROM {table}")


def put_back(connection: sqlite3.Connection, model_list: Iterable[type[models.Model]]) -> None:
    """Insert the rows set aside whose key the table does not hold (a stored row
    wins); with the triggers installed, each one is recorded as a change."""
    for model in model_list:
        aside = _aside(model._meta.db_table)
        columns = _columns(model)
        connection.execute(
            f"INSERT OR IGNORE INTO {_quote(model._meta.db_table)} ({columns}) SELECT {columns} FROM {aside}"
        )
        connection.execute(f"DROP TABLE {aside}")


def drop_triggers(connection: sqlite3.Connection, model: type[models.Model]) -> None:
    for name in _trigger_names(model._meta.db_table):
        connection.execute(f"DROP TRIGGER IF EXISTS {_quote(name)}")


def existing_tables(connection: sqlite3.Connection) -> set[str]:
    return {
        row[0]
        for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }


def existing_models(
    connection: sqlite3.Connection, model_list: Iterable[type[models.Model]]
) -> list[type[models.Model]]:
    """The models of ``model_list`` whose tables exist."""
    existing = existing_tables(connection)
    return [model for model in model_list if model._meta.db_table in existing]
