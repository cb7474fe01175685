"""Database engine of the in-memory alias: Django's SQLite backend on a shared connection."""

from __future__ import annotations

from collections import deque
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.sqlite3 import base as sqlite3_base

from .. import identity
from . import hooks, names, shared
from .commit_hooks import CommitHooks
from .features import DatabaseFeatures


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
            if database.held:
                # Under the same hold of the lock as the statement: a BEGIN (Django's
                # atomic runs it here) finds nothing held, and a rollback takes none of it.
                database.write_held()
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
            if database.held:
                database.write_held()
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


# django-stubs leaves out the private methods of Django's wrappers (_commit, ...),
# which the engine extends: hence the ignores on their super() calls.
class DatabaseWrapper(CommitHooks, sqlite3_base.DatabaseWrapper):  # type: ignore[misc]  # atomic_blocks
    """SQLite wrapper whose threads share one connection per process.

    ``close()`` only detaches this wrapper: the database lives as long as the
    process, whatever happens to Django's per-thread connections.
    """

    memdb_database: shared.SharedDatabase
    memdb_setting_up = False
    # Set at the commit of a transaction whose on_commit hook flushes its changes.
    memdb_flush_due = False
    features_class = DatabaseFeatures

    def __new__(cls, settings_dict: Any = None, *args: Any, **kwargs: Any) -> Any:
        # A copy (copy.copy, pickle) is rebuilt without arguments: it stays this class.
        if cls is DatabaseWrapper and settings_dict is not None:
            # The mode may keep the alias elsewhere (cluster mode: on a server).
            other = hooks.installed().opening().wrapper(settings_dict, *args, **kwargs)
            if other is not None:
                return other
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
        return hooks.installed().opening().database_key(str(self.settings_dict["NAME"]))

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        opening = hooks.installed().opening()
        key = opening.database_key(str(self.settings_dict["NAME"]))
        self.memdb_database = opening.open(key, conn_params, super().get_new_connection)
        return self.memdb_database.connection

    def _start_transaction_under_autocommit(self) -> None:
        database = self.memdb_database
        if not database.mode.begin(self):
            super()._start_transaction_under_autocommit()  # type: ignore[misc]

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
            hooks.installed().connected(self)

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
        committed = False
        try:
            database.track_transaction()
            if database.dirty and not database.flushing:
                if database.connection.in_transaction:
                    self.memdb_schedule_flush()
                else:
                    # This thread flushes them once the lock is released, so that the other
                    # threads go on using the database (and do not flush them too) while it
                    # waits for storage (group commit).
                    committed, database.dirty = True, False
        finally:
            database.lock.release()
        if committed:
            hooks.installed().changes_committed(database, True)

    def _commit(self) -> None:
        database = self.memdb_database
        database.lock.acquire()
        committed = due = False
        try:
            super()._commit()  # type: ignore[misc]
            identity.committed(self.alias)
            committed = True
        finally:
            hooked, self.memdb_hooked = self.memdb_hooked, False
            database.track_transaction()
            due = committed and database.dirty and not database.connection.in_transaction
            if due and hooked:
                # Its on_commit hook flushes even if another thread's flush took the
                # changes meanwhile: it returns once they are stored. Not left dirty:
                # a thread that only reads must not take this commit's flush (nor a
                # compaction it starts) on its way out of a statement.
                self.memdb_flush_due = True
                database.dirty = False
            elif due:
                database.dirty = False  # this thread flushes them, below
            database.lock.release()
        if due and not hooked:
            # A manual transaction (set_autocommit(False)): no on_commit hook
            # is allowed there, so flush here and keep failures pending.
            hooks.installed().changes_committed(database, False)

    def _rollback(self) -> None:
        database = self.memdb_database
        database.lock.acquire()
        try:
            super()._rollback()  # type: ignore[misc]
            identity.rolled_back(self.alias)
        finally:
            self.memdb_hooked = False
            database.track_transaction()
            database.lock.release()

    def _set_autocommit(self, autocommit: bool) -> None:
        database = self.memdb_database
        with database.lock:
            super()._set_autocommit(autocommit)  # type: ignore[misc]

    # Persistence hooks (see CommitHooks)

    def memdb_pending(self) -> bool:
        return self.memdb_database.dirty

    def memdb_effectively_committed(self) -> bool:
        """True when what this connection wrote counts as committed."""
        return not self.connection.in_transaction or self.memdb_in_testcase_blocks_only()

    def memdb_changes_committed(self) -> None:
        due, self.memdb_flush_due = self.memdb_flush_due, False
        if due or self.memdb_database.dirty:
            hooks.installed().changes_committed(self.memdb_database, True)


def detach_after_fork() -> None:
    for wrapper in connections.all(initialized_only=True):
        if isinstance(wrapper, DatabaseWrapper):
            wrapper.connection = None


shared.on_fork(detach_after_fork)
