"""What happens to the in-memory database in each process: start, flush, exit.

Nothing here runs during app initialisation: the first use of the alias in a
process creates the schema, restores the persistent tables and installs the
capture triggers (``bootstrap``), before the statement that asked for it.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management import call_command
from django.db import DatabaseError, InterfaceError, OperationalError, connections, models, transaction

from . import bounds, capture, expiry, identity, lease, registry, restore, spool, storage
from .backend import host, shared
from .conf import DURABILITY_INTERVAL, MODE_CLUSTER, conf
from .exceptions import PersistenceError
from .models import SpoolLease

logger = logging.getLogger("django_memdb")


def current_database() -> shared.SharedDatabase:
    """The in-memory database of this process, started if need be."""
    wrapper = connections[conf.MEMDB_NAME]
    wrapper.ensure_connection()
    return wrapper.memdb_database


def started_database() -> shared.SharedDatabase | None:
    """The in-memory database the alias names now, if this process started it.

    After Django's test runner put the production NAME back, the test
    database is not it: nothing may then be flushed towards production.
    """
    if conf.MEMDB_NAME not in connections.settings:
        return None
    if conf.MEMDB_MODE == MODE_CLUSTER:
        from .cluster import state

        found = state.existing()
        wrapper = connections[conf.MEMDB_NAME]
        if found is None or not found.ready or found.name != str(wrapper.settings_dict["NAME"]):
            return None
        return found  # type: ignore[return-value]
    key = getattr(connections[conf.MEMDB_NAME], "memdb_key", None)  # None: not our engine (E002)
    database = shared.existing(key()) if key else None
    return database if database is not None and database.ready else None


def ensure_usable(model: type[models.Model], write: bool = False) -> None:
    """Refuse a table whose stored data could not be restored (see RestoreError),
    and a write that another process's lease would refuse to store (lease.py)."""
    # Asked once per object by bulk_create: the thread's wrapper knows its database.
    database = getattr(connections[conf.MEMDB_NAME], "memdb_database", None)
    if database is None or not database.ready:
        if not registry.is_persistent(model):
            return
        # Restore now, not inside the statement: a failed restore must refuse
        # this first statement too (and the lease be checked before a write).
        database = current_database()
    if database.failed:
        concrete = model._meta.concrete_model
        error = database.failed.get(concrete)
        if error is not None and restore.still_blocked(database, concrete):
            raise type(error)(str(error))
    if write and registry.is_persistent(model) and not getattr(database, "cluster", False):
        lease.check(database, conf.MEMDB_SPOOL_DATABASE)


def bootstrap(wrapper: Any) -> None:
    """Schema, restore and triggers, once per process and database."""
    database: shared.SharedDatabase = wrapper.memdb_database
    me = threading.get_ident()
    if database.bootstrapping == me:
        return
    with database.lock:
        if database.ready:
            return
        database.bootstrapping = me
        try:
            reused = database.host is not None and _reuse_host_file(database)
            # The project's migrations, as ``migrate --database <alias>`` runs them.
            call_command(
                "migrate", database=wrapper.alias, run_syncdb=True,
                verbosity=0, interactive=False, skip_checks=True,
            )
            conn = database.connection
            capture.install_change_table(conn)
            # Before the restore: a restored table keeps its bound too.
            bounds.install_triggers(conn, _existing(conn, bounds.bounded_models()))
            persistent = registry.persistent_models()
            if reused:
                # Another process of this host restored the shared file.
                spool.adopt_host_lease(database)
                restore.adopt_failures(database)
            elif persistent:
                _restore_over_seeds(database, persistent)
            if database.host is not None and not reused:
                host.write_marker(conn, lease.token(database), database.lease_generation)
            capture.install_triggers(conn, _existing(conn, persistent))
            expiry.forget_purges()  # a new database: purge at the first use
            database.ready = True
        finally:
            database.bootstrapping = None
        if database.host is not None:
            database.host.started()
            if reused and persistent:
                spool.flush(database, raise_errors=False)  # what its last users left
    if persistent:
        start_services(database)
    expiry.start_purger()


def _existing(conn: Any, model_list: Any) -> list[type[models.Model]]:
    existing = capture.existing_tables(conn)
    return [model for model in model_list if model._meta.db_table in existing]


def _restore_over_seeds(database: shared.SharedDatabase, persistent: Iterable[type[models.Model]]) -> None:
    """Restore storage, then put back the seeded rows it holds no key of, as changes.

    Data migrations ran on the fresh database just before: their rows are set
    aside, storage is loaded into the empty tables, and the seeded rows whose
    primary key storage did not fill go back in with the triggers on, so the
    next flush stores them and memory equals storage. A stored row of the same
    key wins. One transaction, foreign keys checked at its end.
    """
    conn = database.connection
    existing = capture.existing_tables(conn)
    seeded = capture.with_rows(conn, [m for m in persistent if m._meta.db_table in existing])
    if not seeded or not storage.storage_table_exists(connections[conf.MEMDB_SPOOL_DATABASE]):
        restore.restore_at_start(database)  # without storage it warns: nowhere to store a seed either
        return
    with reloading(database):
        capture.set_aside(conn, seeded)
        restore.restore_at_start(database)
        capture.install_triggers(conn, seeded)
        capture.put_back(conn, seeded)


def _reuse_host_file(database: shared.SharedDatabase) -> bool:
    """Whether the shared file can be used as it is (host mode)."""
    assert database.host is not None
    if not database.host.first:
        return True  # the processes using it keep it up to date
    marker = host.read_marker(database.connection)
    if marker is not None:
        using = conf.MEMDB_SPOOL_DATABASE
        try:
            stored = SpoolLease.objects.using(using).filter(name=conf.MEMDB_NAME).first()
        except DatabaseError:
            stored = None  # no storage tables yet: nothing to be newer than the file
        token, generation = marker
        if stored is None or (stored.owner == token and stored.generation == generation):
            return True
    database.host.rebuild(database.connection)
    return False


def reinstall_triggers() -> None:
    """After a migration rebuilt tables of the alias, their triggers are gone."""
    for database in shared.all_databases():
        if database.ready:
            with database.lock:
                conn = database.connection
                capture.install_triggers(conn, _existing(conn, registry.persistent_models()))
                bounds.install_triggers(conn, _existing(conn, bounds.bounded_models()))


# Services: the interval flusher and the flush at exit.

_services_started: set[int] = set()
_exit_hooks_installed = False  # inherited by forked children, like the hooks
_stop = threading.Event()


def flush(database: Any, raise_errors: bool = False, log: bool = True) -> int:
    """Journal pending changes of this process's database, whatever the mode."""
    if getattr(database, "cluster", False):
        from .cluster import spool as cluster_spool

        return cluster_spool.flush(database, raise_errors=raise_errors, log=log)
    return spool.flush(database, raise_errors=raise_errors, log=log)


def compact(database: Any, model: type[models.Model] | None = None) -> None:
    if getattr(database, "cluster", False):
        from .cluster import spool as cluster_spool

        cluster_spool.compact(database, model)
    else:
        spool.compact(database, model)


def existing_tables(database: Any) -> set[str]:
    if getattr(database, "cluster", False):
        wrapper = connections[conf.MEMDB_NAME]
        with wrapper.cursor() as cursor:
            return set(wrapper.introspection.table_names(cursor))
    return capture.existing_tables(database.connection)


@contextmanager
def reloading(database: Any) -> Iterator[None]:
    """Around reloading tables from storage: one transaction, foreign keys checked at its end."""
    if getattr(database, "cluster", False):
        from .cluster.lifecycle import server_lock

        wrapper = connections[conf.MEMDB_NAME]
        with server_lock(wrapper), transaction.atomic(using=wrapper.alias):
            yield
        identity.clear(conf.MEMDB_NAME)
        return
    conn = database.connection
    with restore._constraints_deferred(conn), restore._raw_transaction(conn, "django_memdb_restore"):
        yield
    # Committed outside Django's transaction hooks: no row read before it survives.
    identity.clear(conf.MEMDB_NAME)


@contextmanager
def reloading_table(database: Any, model: type[models.Model]) -> Iterator[None]:
    """Around reloading one table: undone if it fails, and never captured as a change."""
    if getattr(database, "cluster", False):
        from .cluster.lifecycle import not_captured

        with not_captured(connections[conf.MEMDB_NAME], [model]), transaction.atomic(using=conf.MEMDB_NAME):
            yield
        return
    conn = database.connection
    try:
        with restore._raw_transaction(conn, "django_memdb_table"):
            capture.drop_triggers(conn, model)
            yield
    finally:
        capture.install_triggers(conn, [model])


def flush_all(raise_errors: bool = False) -> None:
    database = started_database()
    if database is not None:
        flush(database, raise_errors=raise_errors)


def _interval_loop(database: shared.SharedDatabase) -> None:
    while not _stop.wait(conf.MEMDB_FLUSH_INTERVAL):
        if started_database() is not database:
            return
        try:
            flush(database)
        finally:
            try:
                connections.close_all()
            except DatabaseError:  # a dropped connection: gone all the same, and the thread must go on
                pass


# How long the exit flush waits for an unreachable storage database to come back.
EXIT_RETRY_SECONDS = 5.0
EXIT_RETRY_PAUSE = 0.5


def _flush_at_exit(database: Any) -> None:
    """Store what is pending; an unreachable storage database gets a few seconds to come back
    (a restart or failover during a deploy), then the loss is reported plainly."""
    deadline = time.monotonic() + EXIT_RETRY_SECONDS
    while True:
        try:
            flush(database, raise_errors=True, log=False)
            return
        except PersistenceError as exc:
            unreachable = isinstance(exc.__cause__, (OperationalError, InterfaceError))
            if not unreachable or time.monotonic() >= deadline:
                logger.error("django_memdb: %s", _not_stored(database, exc, unreachable))
                return
        time.sleep(EXIT_RETRY_PAUSE)


def _not_stored(database: Any, exc: PersistenceError, retried: bool) -> str:
    cause = exc.__cause__ if exc.__cause__ is not None and exc.__cause__ is not exc else exc
    using = conf.MEMDB_SPOOL_DATABASE
    waited = f" (retried for {EXIT_RETRY_SECONDS:g} s)" if retried else ""
    if getattr(database, "cluster", False):
        return (
            f"at exit, changes committed to the in-memory tables were NOT stored in the '{using}' "
            f"database{waited}: {cause}. They stay in the server's in-memory tables, where the next "
            f"flush of any process of the cluster stores them, unless the server loses those tables first."
        )
    labels = spool.pending_labels(database) or "persistent tables"
    return (
        f"at exit, changes committed in memory to {labels} were NOT stored in the '{using}' "
        f"database{waited}: {cause}. They are lost with this process; a restart restores the "
        f"last state stored. Keep the '{using}' database reachable until the process has exited."
    )


def _at_exit() -> None:
    _stop.set()
    database = started_database()
    if database is None:
        return
    _flush_at_exit(database)
    if database.lease_token is not None:
        try:
            lease.release(database, conf.MEMDB_SPOOL_DATABASE)
        except Exception as exc:  # the process is leaving anyway
            logger.warning("django_memdb: could not release the spool lease: %s", exc)


def _on_sigterm(previous: Any) -> Any:
    def handler(signum: int, frame: Any) -> None:
        if callable(previous):
            previous(signum, frame)  # e.g. gunicorn's, which ends the worker normally
        elif started_database() is None:
            # Nothing to flush: terminate as if this handler was never set.
            signal.signal(signum, previous)
            os.kill(os.getpid(), signum)
        else:
            # Leave through the normal exit path, which flushes (see _at_exit).
            raise SystemExit(128 + signum)

    return handler


def install_signal_handler() -> None:
    """Make SIGTERM leave through the exit path; from AppConfig.ready(), main thread.

    Installed at start-up because the first use of the in-memory database may
    come from a thread, where no handler can be set.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_IGN, None) and not getattr(previous, "django_memdb", False):
        handler = _on_sigterm(previous)
        handler.django_memdb = True
        signal.signal(signal.SIGTERM, handler)


def start_services(database: Any) -> None:
    if id(database) in _services_started:
        return
    _services_started.add(id(database))
    global _exit_hooks_installed
    if not _exit_hooks_installed:
        _exit_hooks_installed = True
        atexit.register(_at_exit)
    if conf.MEMDB_DURABILITY == DURABILITY_INTERVAL:
        threading.Thread(
            target=_interval_loop, args=(database,), name="django_memdb-flush", daemon=True
        ).start()


def _forget_services() -> None:
    _services_started.clear()


shared.on_fork(_forget_services)
