"""Transactions on the raw SQLite connection of the in-memory database, outside Django's."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("django_memdb")


@contextmanager
def raw_transaction(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    """A transaction, or a savepoint inside the one already open."""
    nested = conn.in_transaction
    conn.execute(f"SAVEPOINT {name}" if nested else "BEGIN")
    try:
        yield
    except BaseException:
        if nested:
            conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
            conn.execute(f"RELEASE SAVEPOINT {name}")
        else:
            conn.execute("ROLLBACK")
        raise
    conn.execute(f"RELEASE SAVEPOINT {name}" if nested else "COMMIT")


@contextmanager
def constraints_deferred(conn: sqlite3.Connection) -> Iterator[None]:
    """Load rows in any order: foreign keys are checked once, after loading."""
    if conn.in_transaction:
        conn.execute("PRAGMA defer_foreign_keys = ON")
        yield
        return
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
    for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        logger.warning(
            "django_memdb: restored row %s of %s refers to a missing row of %s "
            "(is %s persistent?)", rowid, table, parent, parent
        )
