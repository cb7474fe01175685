"""Models of tests.seed_app: see the package docstring."""

from __future__ import annotations

from django.db import models

from django_memdb.mixins import PersistentInMemoryDB


class Grade(models.Model, PersistentInMemoryDB):
    name = models.CharField(max_length=40)
