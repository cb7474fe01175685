"""The two tables ``memdb_demo`` writes: one persisted, one in memory only."""

from __future__ import annotations

from django.db import models

from ..mixins import InMemoryDB, PersistentInMemoryDB


class Note(models.Model, PersistentInMemoryDB):
    """In memory, stored in the default database, restored at each process start."""

    text = models.CharField(max_length=200)


class Draft(models.Model, InMemoryDB):
    """In memory only: gone when the process ends."""

    text = models.CharField(max_length=200)
