"""One SQLite connection per process and database, and the lock that serialises it.

SQLite's shared cache takes table locks that ignore the busy timeout, so
threads with a connection each fail with "database table is locked". Instead
every thread of a process uses the same connection, and a re-entrant lock is
held for each statement and for the whole of every transaction: concurrent
writers wait their turn instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import models

from .. import bounds, capture, identity
from ..conf import conf
from .raw import constraints_deferred, raw_transaction


class SharedDatabase:
    """The process-wide state of one in-memory database."""

    def __init__(self, name: str, connection: sqlite3.Connection, mode: Any, files: Any = None) -> None:
        self.name = name
        self.connection = connection
        # The mode that opened it (modes/): the engine asks it how to begin a
        # transaction, the persistence layer who may write storage.
        self.mode = mode
        # What the mode keeps per database: host.HostFiles in host mode.
        self.files = files
        self.lock = threading.RLock()
        # Thread that holds ``lock`` for an open transaction (one extra level).
        self.transaction_owner: int | None = None
        # Set by the capture triggers, cleared when a flush took the changes.
        self.dirty = False
        self.ready = False
        self.bootstrapping: int | None = None
        self.flushing = False
        # Per persistent model: what storage holds (see spool.TableState).
        self.tables: dict[Any, Any] = {}
        # Models whose stored data could not be restored, with the error.
        self.failed: dict[Any, Exception] = {}
        # The spool lease of this process: written by lease.py only.
        self.lease_token: str | None = None
        self.lease_generation = 0
        self.lease_until: Any = None
        self.lease_checked_until: Any = None
        # The last flush error, None once a flush succeeded.
        self.pending_error: Exception | None = None
        # Owners of writes held back (MemDBCache in process mode): written before any
        # other statement reads the database, or a transaction begins.
        self.held: set[Any] = set()
        connection.create_function("django_memdb_changed", 0, self._mark_dirty)
        bounds.register_functions(connection)

    def write_held(self) -> None:
        """Write what is held back; called with ``lock`` held."""
        while self.held:
            self.held.pop().write_held()

    def _mark_dirty(self) -> None:
        self.dirty = True

    def track_transaction(self) -> None:
        """Hold the lock while the connection is inside a transaction.

        Called with ``lock`` held, after every statement, commit and rollback.
        """
        if self.connection.in_transaction:
            if self.transaction_owner is None:
                self.lock.acquire()
                self.transaction_owner = threading.get_ident()
        elif self.transaction_owner is not None:
            self.transaction_owner = None
            self.lock.release()

    def owns_transaction(self) -> bool:
        return self.transaction_owner == threading.get_ident()

    # Reloading tables from storage (restore.py) on the raw connection.

    @contextmanager
    def reloading(self) -> Iterator[None]:
        """One transaction, foreign keys checked at its end."""
        with constraints_deferred(self.connection), raw_transaction(self.connection, "django_memdb_restore"):
            yield
        # Committed outside Django's transaction hooks: no row read before it survives.
        identity.clear(conf.MEMDB_NAME)

    @contextmanager
    def reloading_table(self, model: type[models.Model]) -> Iterator[None]:
        """Undone if it fails, and never captured as a change."""
        try:
            with raw_transaction(self.connection, "django_memdb_table"):
                capture.drop_triggers(self.connection, model)
                yield
        finally:
            capture.install_triggers(self.connection, [model])

    def existing_tables(self) -> set[str]:
        return capture.existing_tables(self.connection)


_databases: dict[str, SharedDatabase] = {}
_registry_lock = threading.Lock()


def get(name: str, connect: Callable[[], SharedDatabase]) -> SharedDatabase:
    """The shared database called ``name``, opened with ``connect`` on first use."""
    try:
        return _databases[name]
    except KeyError:
        pass
    with _registry_lock:
        if name not in _databases:
            _databases[name] = connect()
        return _databases[name]


def existing(name: str) -> SharedDatabase | None:
    return _databases.get(name)


def all_databases() -> list[SharedDatabase]:
    return list(_databases.values())


def _after_fork_in_child() -> None:
    # The parent's connection and locks may be mid-use by threads that do not
    # exist here: forget them (never close them) and start afresh.
    global _registry_lock
    _databases.clear()
    _registry_lock = threading.Lock()
    for callback in _fork_callbacks:
        callback()


_fork_callbacks: list[Callable[[], Any]] = []


def on_fork(callback: Callable[[], Any]) -> None:
    """Run ``callback`` in a forked child after the registry was reset."""
    _fork_callbacks.append(callback)


os.register_at_fork(after_in_child=_after_fork_in_child)
