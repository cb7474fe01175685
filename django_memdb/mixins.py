"""Tag classes that put a model's table in memory (and optionally persist it)."""

from __future__ import annotations

from .tags import InMemoryDB, PeristentInMemoryDB

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
