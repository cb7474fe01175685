"""The in-memory alias as a connection to PostgreSQL or MariaDB/MySQL (cluster mode).

The wrapper is the server's own Django backend, sharing the settings dict of
``MEMDB_CLUSTER_DATABASE`` (so a test database follows), with three
additions: tables it creates are UNLOGGED / ENGINE=MEMORY; a write marks the
connection so that its commit journals the captured changes; and each new
connection first makes sure the server still holds the tables.
"""

from __future__ import annotations

from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.utils import load_backend

from .. import identity, reconnect
from ..backend import hooks, shared
from ..backend.commit_hooks import CommitHooks
from ..conf import conf
from . import dialect, state

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC", "TRUNCA", "MERGE ", "WITH ")


def _is_write(sql: Any) -> bool:
    return isinstance(sql, str) and sql.lstrip()[:6].upper() in _WRITES


class _Capturing:
    """A cursor that tells its connection when a statement may have changed rows."""

    db: Any

    def execute(self, sql: Any, params: Any = None) -> Any:
        identity.statement_started(self.db.alias)
        result = super().execute(sql, params)  # type: ignore[misc]
        if _is_write(sql):
            self.db.memdb_wrote()
        return result

    def executemany(self, sql: Any, param_list: Any) -> Any:
        identity.statement_started(self.db.alias)
        result = super().executemany(sql, param_list)  # type: ignore[misc]
        if _is_write(sql):
            self.db.memdb_wrote()
        return result


class _CapturingCursor(_Capturing, CursorWrapper):
    pass


class _CapturingDebugCursor(_Capturing, CursorDebugWrapper):
    pass


class ClusterWrapper(CommitHooks):
    """Mixed into the server's DatabaseWrapper; see the module docstring."""

    vendor: str
    connection: Any
    alias: str
    settings_dict: dict[str, Any]
    errors_occurred: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.memdb_database = state.get(hooks.installed().opening())
        self.memdb_dialect = dialect.for_connection(self)
        self.memdb_dirty = False
        self.memdb_flushing = False
        self.memdb_checking = False
        # Server ids of the connections whose writes a commit has yet to see journaled.
        self.memdb_writers: set[int] = set()
        base_editor = self.SchemaEditorClass  # type: ignore[has-type]
        self.SchemaEditorClass = type(
            "ClusterSchemaEditor", (base_editor,), {"sql_create_table": self.memdb_dialect.create_table}
        )

    # Connection life cycle

    def ensure_connection(self) -> None:
        if self.memdb_checking:
            super().ensure_connection()  # type: ignore[misc]
            return
        if self.errors_occurred:
            # Outside a request nothing else replaces a connection the server dropped.
            reconnect.reset_if_broken(self)
        fresh = self.connection is None
        self.memdb_checking = True  # connect() calls back here before autocommit is set
        try:
            super().ensure_connection()  # type: ignore[misc]
            if fresh or not self.memdb_database.ready:
                hooks.installed().connected(self)
        finally:
            self.memdb_checking = False

    def make_cursor(self, cursor: Any) -> Any:
        return _CapturingCursor(cursor, self)

    def make_debug_cursor(self, cursor: Any) -> Any:
        return _CapturingDebugCursor(cursor, self)

    # Persistence hooks (see CommitHooks), for a connection of its own per thread

    def memdb_wrote(self) -> None:
        if self.memdb_checking or self.memdb_flushing:
            return
        # No triggers on a server: a write forgets the alias's rows in every thread
        # now, and again when it commits or rolls back (see identity.py).
        self.memdb_identity_wrote = True
        identity.clear(self.alias)
        self.memdb_dirty = True
        self.memdb_writers.add(self.memdb_dialect.connection_id(self.connection))
        self.memdb_schedule_flush()

    def memdb_pending(self) -> bool:
        return self.memdb_dirty

    def memdb_effectively_committed(self) -> bool:
        if not self.in_atomic_block:
            return bool(self.get_autocommit())  # type: ignore[attr-defined]
        return self.memdb_in_testcase_blocks_only()

    def memdb_changes_committed(self, raise_errors: bool = True) -> None:
        if self.memdb_dirty:
            self.memdb_dirty = False
            hooks.installed().changes_committed(self.memdb_database, raise_errors)

    memdb_identity_wrote = False

    def memdb_identity_ended(self) -> None:
        if self.memdb_identity_wrote:
            self.memdb_identity_wrote = False
            identity.clear(self.alias)

    def _commit(self) -> None:
        super()._commit()  # type: ignore[misc]
        self.memdb_identity_ended()
        hooked, self.memdb_hooked = self.memdb_hooked, False
        if self.memdb_dirty and not hooked:
            # A manual transaction (set_autocommit(False)): no on_commit hook there.
            self.memdb_changes_committed(raise_errors=False)

    def _rollback(self) -> None:
        super()._rollback()  # type: ignore[misc]
        self.memdb_identity_ended()

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)
        if self.memdb_identity_wrote:
            identity.clear(self.alias)  # rows read after the savepoint may be gone
        self.memdb_hooked = False
        if self.memdb_dialect.vendor != "mysql":
            # MEMORY tables keep rolled-back writes and their capture rows: those
            # stay pending, journaled by the next flush of any process.
            self.memdb_dirty = False


def alias_wrapper() -> ClusterWrapper:
    """This thread's wrapper of the in-memory alias, which cluster mode made a ClusterWrapper."""
    return cast(ClusterWrapper, connections[conf.MEMDB_NAME])


_classes: dict[type, type] = {}


def wrapper_for(settings_dict: dict[str, Any], alias: str) -> Any:
    """The cluster wrapper of the alias: the server backend of MEMDB_CLUSTER_DATABASE."""
    source_alias = conf.MEMDB_CLUSTER_DATABASE
    try:
        source = connections.settings[source_alias]
    except KeyError:
        raise ImproperlyConfigured(
            f"MEMDB_MODE is 'cluster' but MEMDB_CLUSTER_DATABASE names '{source_alias}', "
            f"which is not in DATABASES."
        ) from None
    base = load_backend(source["ENGINE"]).DatabaseWrapper
    if base.vendor not in ("postgresql", "mysql"):
        raise ImproperlyConfigured(
            f"MEMDB_MODE is 'cluster' but DATABASES['{source_alias}'] is {base.vendor}: the "
            f"in-memory tables need a PostgreSQL or MariaDB/MySQL server every process reaches. "
            f"Point MEMDB_CLUSTER_DATABASE at one, or use MEMDB_MODE 'host' or 'process'."
        )
    cls = _classes.get(base)
    if cls is None:
        cls = _classes[base] = type(f"Cluster{base.__name__}", (ClusterWrapper, base), {})
    # The same dict: a test database the test runner sets on it is ours too.
    return cls(source, alias)


def _detach_after_fork() -> None:
    for wrapper in connections.all(initialized_only=True):
        if isinstance(wrapper, ClusterWrapper):
            wrapper.connection = None  # the parent's socket: never used, never closed here


shared.on_fork(_detach_after_fork)
