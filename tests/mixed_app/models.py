"""Models of tests.mixed_app: see the package docstring."""

from __future__ import annotations

from django.db import models

from django_memdb.mixins import InMemoryDB


class Colour(models.Model, InMemoryDB):
    name = models.CharField(max_length=40)


class Palette(models.Model):
    """In the default database; its rows say on which alias each data migration wrote them."""

    name = models.CharField(max_length=80)
