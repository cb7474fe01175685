"""Mode ``host``: the processes of one host share one SQLite file on tmpfs (backend/host.py).

The first process to open the file restores it (or reuses a file as new as
storage); the others join. One process of the host writes storage at a
time, under the file lock of ``<file>.spool``, and they share one lease: the
one the file's marker records. Tables whose restore failed are recorded in
the file, so that every process of the host refuses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections, models

from .. import identity_sqlite, lease, registry, spool
from ..backend import host, shared
from ..backend.hooks import OpenSQLite
from ..conf import conf
from ..exceptions import RestoreError
from ..models import SpoolLease
from .sqlite import SQLiteMode


def _files(database: shared.SharedDatabase) -> host.HostFiles:
    files: host.HostFiles = database.files
    return files


def adopt_lease(database: shared.SharedDatabase) -> None:
    """The processes of a host share one lease: the one the shared file records."""
    marker = host.read_marker(database.connection)
    if marker is not None:
        lease.adopt(database, marker)


class HostMode(SQLiteMode):
    name = "host"
    shared_by_processes = True

    # Opening: one file per host, its write lock taken when a transaction starts.

    def database_key(self, name: str) -> str:
        spool_settings = connections[conf.MEMDB_SPOOL_DATABASE].settings_dict
        return host.path_for(name, spool_settings, conf.MEMDB_HOST_DIRECTORY)

    def open(self, key: str, conn_params: dict[str, Any], open_sqlite: OpenSQLite) -> shared.SharedDatabase:
        return host.open_database(key, conn_params, open_sqlite, self)

    def begin(self, wrapper: Any) -> bool:
        # Take the file's write lock up front: no deadlock between processes
        # that would each upgrade a read lock.
        wrapper.cursor().execute("BEGIN IMMEDIATE")
        return True

    # Start-up.

    def reuse_file(self, database: shared.SharedDatabase) -> bool:
        files = _files(database)
        if not files.first:
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
        files.rebuild(database.connection)
        return False

    def adopt(self, database: shared.SharedDatabase) -> None:
        # Another process of this host restored the shared file.
        adopt_lease(database)
        database.failed = self.blocked(database)

    def loaded(self, database: shared.SharedDatabase) -> None:
        host.write_marker(database.connection, *lease.marker(database))

    def started(self, database: shared.SharedDatabase, left_pending: bool) -> None:
        _files(database).started()
        if left_pending:
            spool.flush(database, raise_errors=False)  # what its last users left

    # One writer of storage per host, one lease per host.

    @contextmanager
    def spooling(self, database: Any) -> Iterator[None]:
        with _files(database).spooling():
            adopt_lease(database)
            try:
                yield
            finally:
                host.write_marker(database.connection, *lease.marker(database))

    def observed(self, database: Any, generation: int, unless_claimed: bool = False) -> None:
        """The load refreshed the host's shared copy: the file's marker gets the generation too."""
        with database.lock:
            if unless_claimed and not lease.load_pending(database):
                return
            spool.settled(database)  # a batch written without the lock may still hold the file lock
            with _files(database).spooling():
                if unless_claimed:
                    adopt_lease(database)
                    if not lease.load_pending(database):
                        return
                lease.record(database, generation)
                host.write_marker(database.connection, *lease.marker(database))

    def identity_validator(self, database: Any, alias: str) -> Any | None:
        # Other processes of the host commit to the same file.
        return identity_sqlite.host_validator(database, alias)

    # Blocked tables, refused by every process of the host.

    def record_failure(self, database: Any, table: str, message: str) -> None:
        host.record_failure(database.connection, table, message)

    def clear_failure(self, database: Any, table: str) -> None:
        host.clear_failure(database.connection, table)

    def blocked(self, database: Any) -> dict[type[models.Model], Exception]:
        """Called with the lock held."""
        by_table = {model._meta.db_table: model for model in registry.persistent_models()}
        found: dict[type[models.Model], Exception] = {}
        for table, message in host.read_failures(database.connection).items():
            model = by_table.get(table)
            if model is not None:
                found[model] = RestoreError(message)
        return found

    def still_blocked(self, database: Any, model: type[models.Model]) -> bool:
        with database.lock:
            if model._meta.db_table in host.read_failures(database.connection):
                return True
            database.failed.pop(model, None)
            return False
