"""Models of the test project: one of each kind of table django-memdb handles."""

from __future__ import annotations

import uuid

from django.db import models

from django_memdb.mixins import IdentityMapped, InMemoryDB, PeristentInMemoryDB, PersistentInMemoryDB


# The two models of 0.0.6's own test app, unchanged.
class TestModelWithMixin(models.Model, InMemoryDB):
    text = models.TextField()


class TestModelPersistent(models.Model, PeristentInMemoryDB):
    text = models.TextField()


class Ephemeral(InMemoryDB, models.Model):
    """In memory, not persisted; the mixin first works too."""

    text = models.TextField()


class Persistent(models.Model, PersistentInMemoryDB):
    text = models.TextField()


class Other(models.Model, PeristentInMemoryDB):
    """A second persistent table, to see that tables never touch each other's rows."""

    number = models.IntegerField(default=0)


class Plain(models.Model):
    """A model of the default database."""

    text = models.TextField()


class Rich(models.Model, PeristentInMemoryDB):
    """Every kind of field a persistent table may hold."""

    char = models.CharField(max_length=50, blank=True)
    text = models.TextField(blank=True, default="")
    integer = models.IntegerField(default=0)
    big = models.BigIntegerField(null=True)
    floating = models.FloatField(null=True)
    flag = models.BooleanField(default=False)
    maybe = models.BooleanField(null=True)
    when = models.DateTimeField(null=True)
    day = models.DateField(null=True)
    clock = models.TimeField(null=True)
    amount = models.DecimalField(max_digits=12, decimal_places=4, null=True)
    token = models.UUIDField(null=True)
    payload = models.JSONField(null=True)
    blob = models.BinaryField(null=True)
    duration = models.DurationField(null=True)
    address = models.GenericIPAddressField(null=True)


class Keyed(models.Model, PeristentInMemoryDB):
    """A text primary key."""

    key = models.CharField(max_length=40, primary_key=True)
    value = models.IntegerField(default=0)


class Uuided(models.Model, PeristentInMemoryDB):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    label = models.CharField(max_length=20)


class Parent(models.Model, PeristentInMemoryDB):
    name = models.CharField(max_length=50)


class Child(models.Model, PeristentInMemoryDB):
    parent = models.ForeignKey(Parent, on_delete=models.CASCADE, related_name="children")
    name = models.CharField(max_length=50)


class Tag(models.Model, PeristentInMemoryDB):
    name = models.CharField(max_length=50)


class Tagged(models.Model, PeristentInMemoryDB):
    name = models.CharField(max_length=50)
    tags = models.ManyToManyField(Tag, related_name="tagged")


class Note(models.Model, PeristentInMemoryDB):
    """Refers to a default-database row without a database-level constraint."""

    plain = models.ForeignKey(Plain, on_delete=models.DO_NOTHING, db_constraint=False, null=True)
    text = models.TextField()


class Counter(models.Model, PeristentInMemoryDB):
    name = models.CharField(max_length=50)
    value = models.IntegerField(default=0)
    group = models.IntegerField(default=0)


class CounterMemory(models.Model, InMemoryDB):
    name = models.CharField(max_length=50)
    value = models.IntegerField(default=0)
    group = models.IntegerField(default=0)


class CounterMapped(models.Model, InMemoryDB, IdentityMapped):
    """CounterMemory with the identity map, for the benchmark of it."""

    name = models.CharField(max_length=50)
    value = models.IntegerField(default=0)
    group = models.IntegerField(default=0)


class CounterPlain(models.Model):
    name = models.CharField(max_length=50)
    value = models.IntegerField(default=0)
    group = models.IntegerField(default=0)


class OddName(models.Model, PeristentInMemoryDB):
    """A table name with a SQL quote and a Python format character in it."""

    text = models.TextField()

    class Meta:
        db_table = "odd%table's"
class Country(models.Model, PeristentInMemoryDB, IdentityMapped):
    """Mapped with weak references, per thread (the defaults); persisted, so both kinds of triggers meet."""

    code = models.CharField(max_length=2, blank=True)
    name = models.CharField(max_length=50)
    population = models.IntegerField(default=0)


class City(models.Model, PeristentInMemoryDB):
    """Points at a mapped model; a strong, bounded map."""

    memdb_identity_map = True
    memdb_identity_strong = True
    memdb_identity_limit = 50

    country = models.ForeignKey(Country, on_delete=models.CASCADE, related_name="cities")
    name = models.CharField(max_length=50)


class Currency(models.Model, InMemoryDB):
    """A text primary key, one process-wide map."""

    memdb_identity_map = True
    memdb_identity_shared = True

    code = models.CharField(max_length=3, primary_key=True)
    rate = models.DecimalField(max_digits=10, decimal_places=4, default=1)

