"""Database engine of the in-memory alias: Django's SQLite backend on a shared connection."""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.sqlite3 import base as sqlite3_base

from .. import identity
from ..conf import MODE_CLUSTER, MODE_HOST, conf
from ..transactions import testcase_blocks_only
from . import host, names, shared
from .features import DatabaseFeatures


class _AtomicBlocks(list):  # type: ignore[type-arg]
    """``atomic_blocks`` that notices when a user's block returns to a TestCase's.

    Django's TestCase wraps every test in atomic blocks that never commit. As
    Django does for ``atomic(durable=True)``, a block opened by the test itself
    counts as committed when it exits back to the TestCase's blocks.
    """

    def __init__(self, wrapper: CommitHooks, blocks: Any = ()) -> None:
        super().__init__(blocks)
        self.wrapper = wrapper

    def pop(self, *args: Any) -> Any:
        block = super().pop(*args)
        if (
            self
            and not getattr(block, "_from_testcase", False)
            and testcase_blocks_only(self)
            and sys.exc_info()[0] is None
        ):
            self.wrapper.memdb_changes_committed()
        return block


class CommitHooks:
    """Flushes when a connection's changes count as committed; mixed into both engines of the alias.

    Each engine says whether changes are pending (``memdb_pending``), when
    they count as committed (``memdb_effectively_committed``) and how they
    are journaled (``memdb_changes_committed``).
    """

    memdb_hooked = False
    in_atomic_block: bool
    needs_rollback: bool

    @property
    def atomic_blocks(self) -> _AtomicBlocks:
        return self._memdb_atomic_blocks

    @atomic_blocks.setter
    def atomic_blocks(self, value: Any) -> None:
        self._memdb_atomic_blocks = _AtomicBlocks(self, value)

    def memdb_pending(self) -> bool:
        raise NotImplementedError

    def memdb_effectively_committed(self) -> bool:
        raise NotImplementedError

    def memdb_changes_committed(self) -> None:
        raise NotImplementedError

    def memdb_in_testcase_blocks_only(self) -> bool:
        """Inside a TestCase's blocks only: as for ``atomic(durable=True)``, that counts as committed."""
        return (
            self.in_atomic_block
            and not self.needs_rollback
            and bool(self.atomic_blocks)
            and testcase_blocks_only(self.atomic_blocks)
        )

    def memdb_schedule_flush(self) -> None:
        if self.memdb_effectively_committed():
            self.memdb_changes_committed()
        elif self.in_atomic_block and not self.memdb_hooked:
            self.memdb_hook_commit()

    def memdb_hook_commit(self) -> None:
        self.memdb_hooked = True
        self.on_commit(self.memdb_changes_committed)  # type: ignore[attr-defined]

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)  # type: ignore[misc]
        identity.rolled_back(self.alias, savepoint=True)  # type: ignore[attr-defined]
        # Django drops on_commit callbacks registered inside the savepoint;
        # changes made before it may still be pending.
        self.memdb_hooked = False
        if self.memdb_pending() and self.in_atomic_block:
            self.memdb_hook_commit()


class SerializedCursor(sqlite3_base.SQLiteCursorWrapper):
    """Cursor whose statements run, and whose results are read, under the shared lock.

    Rows are fetched before the lock is released: a statement left stepping
    on the shared connection would make another thread's COMMIT fail with
    "SQL statements in progress".
    """

    memdb_wrapper: DatabaseWrapper
    _rows: deque[Any] | None = None

    def execute(self, query: str, params: Any = None) -> Any:
        database = self.memdb_wrapper.memdb_database
        database.lock.acquire()
        try:
            identity.statement_started(self.memdb_wrapper.alias)
            super().execute(query, params)
            self._rows = deque(super().fetchall()) if self.description is not None else None
            return self
        finally:
            self.memdb_wrapper.memdb_after_statement(database)

    def executemany(self, query: str, param_list: Any) -> Any:
        database = self.memdb_wrapper.memdb_database
        database.lock.acquire()
        try:
            identity.statement_started(self.memdb_wrapper.alias)
            self._rows = None
            return super().executemany(query, param_list)
        finally:
            self.memdb_wrapper.memdb_after_statement(database)

    def fetchone(self) -> Any:
        rows = self._rows
        if rows is None:
            return super().fetchone()
        return rows.popleft() if rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._rows
        if rows is None:
            return super().fetchmany(size or self.arraysize)
        return [rows.popleft() for _ in range(min(size or self.arraysize, len(rows)))]

    def fetchall(self) -> list[Any]:
        rows = self._rows
        if rows is None:
            return super().fetchall()
        self._rows = deque()
        return list(rows)

    def __next__(self) -> Any:
        rows = self._rows
        if rows is None:
            return super().__next__()
        if rows:
            return rows.popleft()
        raise StopIteration


class DatabaseWrapper(CommitHooks, sqlite3_base.DatabaseWrapper):
    """SQLite wrapper whose threads share one connection per process.

    ``close()`` only detaches this wrapper: the database lives as long as the
    process, whatever happens to Django's per-thread connections.
    """

    memdb_database: shared.SharedDatabase
    memdb_setting_up = False
    features_class = DatabaseFeatures

    def __new__(cls, settings_dict: Any = None, *args: Any, **kwargs: Any) -> Any:
        if cls is DatabaseWrapper and conf.MEMDB_MODE == MODE_CLUSTER:
            # One setting moves the alias onto a shared server: see cluster/engines.py.
            from ..cluster.engines import wrapper_for

            return wrapper_for(settings_dict, *args, **kwargs)
        return super().__new__(cls)

    # Connection life cycle

    def check_settings(self) -> None:
        super().check_settings()
        # Check E002 does not run for shell or scripts: a file would be created and used.
        name = self.settings_dict["NAME"]
        if not names.is_in_memory(name):
            message, hint = names.not_in_memory(self.alias, self.settings_dict["ENGINE"], name)
            raise ImproperlyConfigured(f"{message} {hint}")

    def memdb_key(self) -> str:
        """The name of this alias's database in the process registry (shared.py)."""
        if conf.MEMDB_MODE == MODE_HOST:
            spool = connections[conf.MEMDB_SPOOL_DATABASE].settings_dict
            return host.path_for(self.settings_dict["NAME"], spool, conf.MEMDB_HOST_DIRECTORY)
        return str(self.settings_dict["NAME"])

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        open_sqlite = super().get_new_connection
        key = self.memdb_key()
        if conf.MEMDB_MODE == MODE_HOST:

            def connect() -> tuple[Any, Any]:
                files = host.HostFiles(key)
                params = {**conn_params, "timeout": 60.0}
                return files.open(lambda file: open_sqlite({**params, "database": file})), files

            self.memdb_database = shared.get(key, connect)
        else:
            self.memdb_database = shared.get(key, lambda: (open_sqlite(conn_params), None))
        return self.memdb_database.connection

    def _start_transaction_under_autocommit(self) -> None:
        if self.memdb_database.host is not None:
            # Take the file's write lock up front: no deadlock between processes
            # that would each upgrade a read lock.
            self.cursor().execute("BEGIN IMMEDIATE")
        else:
            super()._start_transaction_under_autocommit()

    def connect(self) -> None:
        # Django's connect() asks for the connection (set_autocommit) before
        # autocommit is on: the bootstrap must wait until it is set up, or the
        # migrations it runs share an implicit transaction.
        self.memdb_setting_up = True
        try:
            super().connect()
        finally:
            self.memdb_setting_up = False

    def init_connection_state(self) -> None:
        super().init_connection_state()
        # Set up: receivers of connection_created may use the tables.
        self.memdb_setting_up = False

    def ensure_connection(self) -> None:
        if self.connection is None:
            super().ensure_connection()
        if not self.memdb_database.ready and not self.memdb_setting_up:
            from .. import lifecycle

            lifecycle.bootstrap(self)

    def _close(self) -> None:
        # Leave the shared connection open; end this thread's transaction.
        if self.connection is None:
            return  # as Django's: a wrapper that never connected has nothing to close
        database = self.memdb_database
        with database.lock:
            if database.owns_transaction():
                self.connection.rollback()
                identity.rolled_back(self.alias)
                database.track_transaction()

    def is_in_memory_db(self) -> bool:
        return True

    def close(self) -> None:
        super(sqlite3_base.DatabaseWrapper, self).close()

    # Statements and transactions under the shared lock

    def create_cursor(self, name: str | None = None) -> Any:
        cursor = self.connection.cursor(factory=SerializedCursor)
        cursor.memdb_wrapper = self
        return cursor

    def memdb_after_statement(self, database: shared.SharedDatabase) -> None:
        try:
            database.track_transaction()
            if database.dirty and not database.flushing:
                self.memdb_schedule_flush()
        finally:
            database.lock.release()

    def _commit(self) -> None:
        database = self.memdb_database
        database.lock.acquire()
        try:
            super()._commit()
            identity.committed(self.alias)
        finally:
            hooked, self.memdb_hooked = self.memdb_hooked, False
            database.track_transaction()
            database.lock.release()
        if database.dirty and not hooked:
            # A manual transaction (set_autocommit(False)): no on_commit hook
            # is allowed there, so flush here and keep failures pending.
            from .. import spool

            spool.changes_committed(database, raise_errors=False)

    def _rollback(self) -> None:
        database = self.memdb_database
        database.lock.acquire()
        try:
            super()._rollback()
            identity.rolled_back(self.alias)
        finally:
            self.memdb_hooked = False
            database.track_transaction()
            database.lock.release()

    def _set_autocommit(self, autocommit: bool) -> None:
        database = self.memdb_database
        with database.lock:
            super()._set_autocommit(autocommit)

    # Persistence hooks (see CommitHooks)

    def memdb_pending(self) -> bool:
        return self.memdb_database.dirty

    def memdb_effectively_committed(self) -> bool:
        """True when what this connection wrote counts as committed."""
        return not self.connection.in_transaction or self.memdb_in_testcase_blocks_only()

    def memdb_changes_committed(self) -> None:
        if self.memdb_database.dirty:
            from .. import spool

            spool.changes_committed(self.memdb_database)


def detach_after_fork() -> None:
    for wrapper in connections.all(initialized_only=True):
        if isinstance(wrapper, DatabaseWrapper):
            wrapper.connection = None


shared.on_fork(detach_after_fork)
