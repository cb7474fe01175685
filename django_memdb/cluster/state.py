"""What one process knows of the cluster's in-memory tables."""

from __future__ import annotations

import threading
from typing import Any

from django.db import connections

from ..backend import shared
from ..conf import conf


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

    cluster = True
    host = None
    lease_token = None

    def __init__(self) -> None:
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


_state: ClusterState | None = None
_state_lock = threading.Lock()


def get() -> ClusterState:
    global _state
    with _state_lock:
        if _state is None:
            _state = ClusterState()
        return _state


def existing() -> ClusterState | None:
    return _state


def _forget_after_fork() -> None:
    # Rows live on the server: a forked child only needs its own bookkeeping.
    global _state, _state_lock
    _state, _state_lock = None, threading.Lock()


shared.on_fork(_forget_after_fork)
