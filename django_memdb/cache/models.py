"""The tables of MemDBCache: one in memory only, one also persisted.

Both live in the in-memory database like any tagged model (the router sends
them there and their migration runs on the alias only). The cache reads and
writes them with prepared SQL, not through the ORM: see store.py.
"""

from __future__ import annotations

from django.db import models

from ..mixins import InMemoryDB, PeristentInMemoryDB


class CacheEntryBase(models.Model):
    """One cache entry. ``key`` is the cache's namespace and Django's full key."""

    key = models.TextField(primary_key=True)
    cache = models.CharField(max_length=100, help_text="The LOCATION of the cache that owns the entry.")
    value = models.BinaryField()
    kind = models.PositiveSmallIntegerField(
        help_text="0: UTF-8 JSON, 1: pickle; plus 2 when the cache counted the row itself."
    )
    expires = models.FloatField(null=True, blank=True, help_text="Unix time; empty: never.")
    accessed = models.BigIntegerField(default=0, help_text="Recency stamp for LRU eviction.")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.key


class CacheEntry(CacheEntryBase, InMemoryDB):
    """Entries of caches that live as long as the in-memory database."""

    class Meta:
        verbose_name = "cache entry"
        verbose_name_plural = "cache entries"


class PersistentCacheEntry(CacheEntryBase, PeristentInMemoryDB):
    """Entries of caches with ``OPTIONS["PERSISTENT"]``: journaled like any persistent table."""

    class Meta:
        verbose_name = "persistent cache entry"
        verbose_name_plural = "persistent cache entries"
