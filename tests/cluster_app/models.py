"""In-memory models with short columns only, as MariaDB/MySQL MEMORY tables require."""

from __future__ import annotations

from django.db import models

from django_memdb.mixins import IdentityMapped, InMemoryDB, PeristentInMemoryDB


class Entry(models.Model, PeristentInMemoryDB):
    text = models.CharField(max_length=200)
    number = models.IntegerField(default=0)


class Tag(models.Model, PeristentInMemoryDB):
    """A second persistent table, for transactions that span two."""

    name = models.CharField(max_length=50, primary_key=True)
    entry = models.ForeignKey(Entry, null=True, on_delete=models.SET_NULL)


class Scratchpad(models.Model, InMemoryDB):
    """Shared by every process, never stored."""

    text = models.CharField(max_length=200)


class OddName(models.Model, PeristentInMemoryDB):
    """A table name with a SQL quote in it (Django's ORM on PostgreSQL takes no "%" in one)."""

    text = models.CharField(max_length=200)

    class Meta:
        db_table = "cluster_app's"
class Label(models.Model, InMemoryDB, IdentityMapped):
    """Read through the identity map; shared by every process, never stored."""

    name = models.CharField(max_length=50)
