"""Expiring and bounded in-memory models: each write path and mode is tested on them."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from django_memdb.expiry import Expiry
from django_memdb.mixins import IdentityMapped, InMemoryDB, PersistentInMemoryDB


class Token(models.Model, PersistentInMemoryDB):
    """Expires an hour after ``created``: the tests move the clock, never wait."""

    text = models.CharField(max_length=100)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    memdb_expiry = Expiry(ttl=3600, field="created")


class Deadline(models.Model, PersistentInMemoryDB):
    """Each row expires at its own ``expires_at`` (NULL: never)."""

    text = models.CharField(max_length=100)
    expires_at = models.DateTimeField(null=True, db_index=True)

    memdb_expiry = Expiry(field="expires_at")


class Grant(models.Model, InMemoryDB):
    """Expiring, with rows of another table that cascade from it."""

    text = models.CharField(max_length=100)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    memdb_expiry = Expiry(ttl=60, field="created")


class GrantUse(models.Model, InMemoryDB):
    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="uses")


class Latest(models.Model, PersistentInMemoryDB):
    """At most five rows, the oldest evicted first."""

    text = models.CharField(max_length=100)

    memdb_max_rows = 5
    memdb_eviction = "oldest"


class Recent(models.Model, InMemoryDB):
    """At most five rows, the least recently used evicted first."""

    text = models.CharField(max_length=100)

    memdb_max_rows = 5
    memdb_eviction = "lru"


class MappedGrant(models.Model, InMemoryDB, IdentityMapped):
    """Expiring and read through the identity map: the map never hands out an expired row."""

    text = models.CharField(max_length=100)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    memdb_expiry = Expiry(ttl=60, field="created")
