"""An expiring persistent model with short columns only, as MariaDB/MySQL MEMORY tables require."""

from __future__ import annotations

from django.db import models

from django_memdb.expiry import Expiry
from django_memdb.mixins import PeristentInMemoryDB


class Pass(models.Model, PeristentInMemoryDB):
    """Each row expires at its own ``expires_at`` (NULL: never)."""

    text = models.CharField(max_length=200)
    expires_at = models.DateTimeField(null=True, db_index=True)

    memdb_expiry = Expiry(field="expires_at")
