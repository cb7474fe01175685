"""Receivers of Django's signals for the identity map, connected in AppConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.core.signals import request_finished, request_started, setting_changed
from django.db import connections
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from . import identity, identity_sqlite, modes
from .backend import shared
from .conf import conf
from .identity_manager import clear_aliases


def _sqlite_database(connection: Any) -> Any:
    """The shared SQLite database behind a wrapper of the alias (None in cluster mode)."""
    database = getattr(connection, "memdb_database", None)
    return database if isinstance(database, shared.SharedDatabase) else None


@receiver(connection_created, dispatch_uid="django_memdb.identity_connected")
def connected(sender: Any, connection: Any, **kwargs: Any) -> None:
    database = _sqlite_database(connection)
    if database is None or not identity_sqlite.tables():
        return
    with database.lock:
        identity_sqlite.register(database.connection, connection.alias)
    known = getattr(identity.validator(connection.alias), "database", None)
    if known is not database:
        validator = modes.current().identity_validator(database, connection.alias)
        if validator is not None:
            identity.set_validator(connection.alias, validator)


@receiver(post_migrate, dispatch_uid="django_memdb.identity_migrated")
def migrated(sender: Any, using: str = "", **kwargs: Any) -> None:
    """Tables may have been rebuilt: triggers again, and no row read before survives."""
    if using != conf.MEMDB_NAME:
        return
    wrapper = connections[using]
    database = _sqlite_database(wrapper)
    if database is not None and identity_sqlite.tables():
        with database.lock:
            identity_sqlite.register(database.connection, using)
            existing = {row[0] for row in database.connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            ).fetchall()}
            identity_sqlite.install(database.connection, existing)
    identity.flush(using=using)


@receiver(request_started, dispatch_uid="django_memdb.identity_request_started")
def request_began(sender: Any, **kwargs: Any) -> None:
    modes.current().request_started()


@receiver(request_finished, dispatch_uid="django_memdb.identity_request_finished")
def request_ended(sender: Any, **kwargs: Any) -> None:
    if conf.MEMDB_IDENTITY_FLUSH_AT_REQUEST_END:
        identity.forget_thread()


@receiver(setting_changed, dispatch_uid="django_memdb.identity_setting_changed")
def routing_changed(sender: Any, setting: str = "", **kwargs: Any) -> None:
    if setting in ("DATABASE_ROUTERS", "MEMDB_NAME", "DATABASES"):
        clear_aliases()
