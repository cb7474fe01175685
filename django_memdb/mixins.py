"""Tag classes that put a model's table in memory (and optionally persist it)."""

from __future__ import annotations


class InMemoryDB:
    """Tag: ``class M(models.Model, InMemoryDB)`` keeps M's table in memory."""


class PeristentInMemoryDB(InMemoryDB):
    """Tag: M's table is in memory and spooled to the default database.

    The name carries the spelling of django-memdb 0.0.6 and is kept for
    compatibility; ``PersistentInMemoryDB`` is the same class.
    """


PersistentInMemoryDB = PeristentInMemoryDB

__all__ = ["InMemoryDB", "PeristentInMemoryDB", "PersistentInMemoryDB"]
