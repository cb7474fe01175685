"""Receivers of Django's signals, connected in AppConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.core.signals import request_finished
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from . import lifecycle
from .conf import conf


@receiver(post_migrate, dispatch_uid="django_memdb.reinstall_triggers")
def reinstall_triggers(sender: Any, using: str = "", **kwargs: Any) -> None:
    if using == conf.MEMDB_NAME:
        lifecycle.reinstall_triggers()


@receiver(request_finished, dispatch_uid="django_memdb.flush_pending")
def flush_pending(sender: Any, **kwargs: Any) -> None:
    # Changes left pending by a rolled-back ATOMIC_REQUESTS transaction of the
    # spool database, or by a failed flush, are retried when the request ends.
    database = lifecycle.started_database()
    if database is not None and (database.dirty or database.pending_error is not None):
        lifecycle.flush(database)
