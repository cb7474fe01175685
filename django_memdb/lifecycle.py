"""The in-memory database of this process, as the rest of the app reaches it.

Each call asks the current mode (modes/); the engine reaches the same
through the hooks installed here from AppConfig.ready() (backend/hooks.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from django.db import connections, models

from . import bounds, capture, expiry, modes, registry, restore, services
from .backend import hooks, shared
from .backend.hooks import Opening
from .conf import conf
from .exceptions import RestoreError
from .models import PersistentStorage


def current_database() -> Any:
    """The in-memory database of this process, started if need be."""
    wrapper: Any = connections[conf.MEMDB_NAME]  # the engine's, or the cluster's (cluster/engines.py)
    wrapper.ensure_connection()
    return wrapper.memdb_database


def started_database() -> Any | None:
    """The in-memory database the alias names now, if this process started it."""
    return modes.started_database()


def ensure_usable(model: type[models.Model], write: bool = False) -> None:
    """Refuse a table whose stored data could not be restored (see RestoreError),
    and a write that the mode would refuse to store (lease.py)."""
    # Asked once per object by bulk_create: the thread's wrapper knows its database.
    database = getattr(connections[conf.MEMDB_NAME], "memdb_database", None)
    if database is None or not database.ready:
        if not registry.is_persistent(model):
            return
        # Restore now, not inside the statement: a failed restore must refuse
        # this first statement too (and the lease be checked before a write).
        database = current_database()
    if database.failed:
        concrete = model._meta.concrete_model or model
        error = database.failed.get(concrete)
        if error is not None and modes.current().still_blocked(database, concrete):
            raise type(error)(str(error))
    if write and registry.is_persistent(model):
        modes.current().check_write(database)


def flush(database: Any, raise_errors: bool = False, log: bool = True) -> int:
    """Journal pending changes of this process's database, whatever the mode."""
    return modes.current().flush(database, raise_errors=raise_errors, log=log)


def compact(database: Any, model: type[models.Model] | None = None) -> None:
    modes.current().compact(database, model)


def existing_tables(database: Any) -> set[str]:
    return set(database.existing_tables())


def reloading(database: Any) -> AbstractContextManager[None]:
    """Around reloading tables from storage: one transaction, foreign keys checked at its end."""
    return database.reloading()


def reloading_table(database: Any, model: type[models.Model]) -> AbstractContextManager[None]:
    """Around reloading one table: undone if it fails, and never captured as a change."""
    return database.reloading_table(model)


def flush_all(raise_errors: bool = False) -> None:
    database = started_database()
    if database is not None:
        flush(database, raise_errors=raise_errors)


def reinstall_triggers() -> None:
    """After a migration rebuilt tables of the alias, their triggers are gone."""
    for database in shared.all_databases():
        if database.ready:
            with database.lock:
                conn = database.connection
                capture.install_triggers(conn, capture.existing_models(conn, registry.persistent_models()))
                bounds.install_triggers(conn, capture.existing_models(conn, bounds.bounded_models()))


def restore_rows(database: Any, query: Iterable[PersistentStorage] | None) -> None:
    """Load given snapshot rows (or all) into live tables, then store memory again."""
    using = conf.MEMDB_SPOOL_DATABASE
    if query is None:
        query = PersistentStorage.objects.using(using).order_by("id")
    wanted: dict[type[models.Model], list[PersistentStorage]] = {}
    problems: list[str] = []
    for row in query:
        model = registry.model_for_key(row.application, row.modelname)
        if model is None:
            problems.append(
                f"{row.application}.{row.modelname} is no persistent model of this project; "
                f"its stored row {row.pk} was kept."
            )
            continue
        wanted.setdefault(model, []).append(row)
    mode = modes.current()
    with database.lock:
        mode.flush(database, raise_errors=True)
        mode.observe_load(database, using)
        failures = restore._load(database, wanted, using)
        for model in wanted:
            if model not in failures:
                mode.compact(database, model)
    restore.mark_restored()
    problems.extend(str(error) for error in failures.values())
    if problems:
        raise RestoreError(" ".join(problems))


class _Hooks:
    """What the engine asks (backend/hooks.py), answered by the current mode."""

    def opening(self) -> Opening:
        return modes.current()

    def connected(self, wrapper: Any) -> None:
        modes.current().first_use(wrapper)
        database = wrapper.memdb_database
        if database.ready:
            if registry.persistent_models():
                services.start(database)
            expiry.start_purger()

    def changes_committed(self, database: Any, raise_errors: bool) -> None:
        modes.current().changes_committed(database, raise_errors)

    def flush_started(self) -> None:
        flush_all()


def install() -> None:
    """Connect the engine to the modes and start the signal handler; from AppConfig.ready()."""
    hooks.install(_Hooks())
    services.install_signal_handler()
