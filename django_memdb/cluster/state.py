"""What one process knows of the cluster's in-memory tables."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections, models, transaction

from .. import identity
from ..backend import shared
from ..conf import conf
from .server import not_captured, server_lock


class ThreadConnection:
    """The calling thread's connection to the cluster, with the sqlite3 calls storage.py makes."""

    def execute(self, sql: str, params: Any = ()) -> Any:
        cursor = connections[conf.MEMDB_NAME].cursor()
        cursor.execute(sql, params or None)
        return cursor

    def executemany(self, sql: str, param_list: Any) -> Any:
        param_list = list(param_list)
        if param_list:
            with connections[conf.MEMDB_NAME].cursor() as cursor:
                cursor.executemany(sql, param_list)


class ClusterState:
    """Counterpart of backend.shared.SharedDatabase for a table set on a server.

    The rows live on the server; this holds the process's bookkeeping: whether
    it checked the tables, the storage state of each table (for compaction),
    the tables it could not restore, and the last flush error.
    """

    # Cluster mode has no lease: one copy of the tables, on the server.
    lease_token = None
    files = None

    def __init__(self, mode: Any) -> None:
        # The mode (modes/cluster.py), as SharedDatabase.mode.
        self.mode = mode
        self.connection = ThreadConnection()
        self.lock = threading.RLock()
        self.ready = False
        self.bootstrapping: int | None = None
        self.fingerprint = ""
        # The database NAME the tables were checked in (the test runner changes it).
        self.name = ""
        self.tables: dict[Any, Any] = {}
        self.failed: dict[Any, Exception] = {}
        self.pending_error: Exception | None = None
        # Changes left pending while the spool database was in a project's transaction.
        self.dirty = False

    # Reloading tables from storage (restore.py), as SharedDatabase does.

    @contextmanager
    def reloading(self) -> Iterator[None]:
        """One transaction under the server lock, foreign keys checked at its end."""
        wrapper = connections[conf.MEMDB_NAME]
        with server_lock(wrapper), transaction.atomic(using=wrapper.alias):
            yield
        identity.clear(conf.MEMDB_NAME)

    @contextmanager
    def reloading_table(self, model: type[models.Model]) -> Iterator[None]:
        """Undone if it fails, and never captured as a change."""
        with not_captured(connections[conf.MEMDB_NAME], [model]), transaction.atomic(using=conf.MEMDB_NAME):
            yield

    def existing_tables(self) -> set[str]:
        wrapper = connections[conf.MEMDB_NAME]
        with wrapper.cursor() as cursor:
            return set(wrapper.introspection.table_names(cursor))


_state: ClusterState | None = None
_state_lock = threading.Lock()


def get(mode: Any) -> ClusterState:
    global _state
    with _state_lock:
        if _state is None:
            _state = ClusterState(mode)
        return _state


def existing() -> ClusterState | None:
    return _state


def _forget_after_fork() -> None:
    # Rows live on the server: a forked child only needs its own bookkeeping.
    global _state, _state_lock
    _state, _state_lock = None, threading.Lock()


shared.on_fork(_forget_after_fork)
