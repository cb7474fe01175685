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


class IdentityMapped:
    """Tag: ``class M(models.Model, InMemoryDB, IdentityMapped)`` keeps one instance per row.

    The same as ``memdb_identity_map = True`` on the model; see identity.py
    for the options (``memdb_identity_strong``, ``memdb_identity_limit``,
    ``memdb_identity_shared``).
    """

    memdb_identity_map = True


__all__ = ["IdentityMapped", "InMemoryDB", "PeristentInMemoryDB", "PersistentInMemoryDB"]

# Mapped models get their hooks when Django prepares their class.
from . import identity_install  # noqa: E402,F401
