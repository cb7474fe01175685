"""In-memory models of tests.fk_app: see the package docstring."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from django_memdb.mixins import InMemoryDB, PersistentInMemoryDB


class Author(models.Model, PersistentInMemoryDB):
    name = models.CharField(max_length=100)
    # Across databases: no constraint, as check E004 asks.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        db_constraint=False, related_name="+",
    )


class Book(models.Model, PersistentInMemoryDB):
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=100)
    editor = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL, related_name="edited")
    pages = models.IntegerField(default=0, db_index=True)
    coauthors = models.ManyToManyField(Author, blank=True, related_name="coauthored")


class Shelf(models.Model, InMemoryDB):
    label = models.CharField(max_length=80)
    book = models.ForeignKey(Book, null=True, on_delete=models.SET_NULL, related_name="shelves")


class Genre(models.Model, InMemoryDB):
    """A lookup table that migration 0004 seeds, at every first use of a fresh in-memory database."""

    name = models.CharField(max_length=40)
