"""Storage of persistent in-memory tables, in the default database."""

from __future__ import annotations

from django.db import models


class PersistentStorage(models.Model):
    """The snapshot of one persistent in-memory table: one row per non-empty table."""

    application = models.CharField(max_length=63)
    modelname = models.CharField(max_length=63)
    inserted = models.DateTimeField(auto_now_add=True)
    codec = models.CharField(max_length=128)
    data = models.BinaryField()
    rows = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Rows in the snapshot; empty for 0.0.6 snapshots."
    )

    class Meta:
        verbose_name = "persistent storage"
        verbose_name_plural = "persistent storage"
        indexes = [models.Index(fields=["application", "modelname"], name="django_memdb_ps_model")]

    def __str__(self) -> str:
        return f"{self.application}.{self.modelname}"


class PersistentJournal(models.Model):
    """Changes committed to a table since its snapshot, replayed after it on restore."""

    id = models.BigAutoField(primary_key=True)
    application = models.CharField(max_length=63)
    modelname = models.CharField(max_length=63)
    inserted = models.DateTimeField(auto_now_add=True)
    codec = models.CharField(max_length=128)
    data = models.BinaryField()
    rows = models.PositiveIntegerField(help_text="Rows changed by this entry.")

    class Meta:
        verbose_name = "persistent journal entry"
        verbose_name_plural = "persistent journal"
        indexes = [
            models.Index(fields=["application", "modelname", "id"], name="django_memdb_pj_model")
        ]

    def __str__(self) -> str:
        return f"{self.application}.{self.modelname} #{self.id}"


class SpoolLease(models.Model):
    """Which process may write an in-memory database's tables to storage.

    ``generation`` is bumped when the owner claims the lease (its first write,
    a takeover, a renewal, a snapshot) and when a process loads storage; a
    process may only take over when it still matches what it loaded (see
    lease.py). Cluster mode does not use it.
    """

    name = models.CharField(max_length=100, unique=True)
    owner = models.CharField(max_length=64)
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    generation = models.BigIntegerField(default=0)
    expires = models.DateTimeField()

    class Meta:
        verbose_name = "spool lease"

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.pid})"
