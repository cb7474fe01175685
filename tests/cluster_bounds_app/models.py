"""A bounded persistent model for cluster mode (tests/test_cluster_bounds.py)."""

from __future__ import annotations

from django.db import models

from django_memdb.mixins import PeristentInMemoryDB

BOUND = 10


class Slot(models.Model, PeristentInMemoryDB):
    """At most BOUND rows: an insert past it evicts the oldest (lowest key)."""

    text = models.CharField(max_length=100)

    memdb_max_rows = BOUND
    memdb_eviction = "oldest"
