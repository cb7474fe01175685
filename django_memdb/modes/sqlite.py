"""What the modes that keep the tables in SQLite share: start-up, lease and journal.

Nothing here runs during app initialisation: the first use of the alias in a
process creates the schema, restores the persistent tables and installs the
capture triggers, before the statement that asked for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from django.core.management import call_command
from django.db import connections, models

from .. import bounds, capture, expiry, lease, registry, restore, spool, storage
from ..backend import shared
from ..conf import conf
from .base import Mode

logger = logging.getLogger("django_memdb")


def restore_over_seeds(database: shared.SharedDatabase, persistent: Iterable[type[models.Model]]) -> None:
    """Restore storage, then put back the seeded rows it holds no key of, as changes.

    Data migrations ran on the fresh database just before: their rows are set
    aside, storage is loaded into the empty tables, and the seeded rows whose
    primary key storage did not fill go back in with the triggers on, so the
    next flush stores them and memory equals storage. A stored row of the same
    key wins. One transaction, foreign keys checked at its end.
    """
    conn = database.connection
    seeded = capture.with_rows(conn, capture.existing_models(conn, persistent))
    if not seeded or not storage.storage_table_exists(connections[conf.MEMDB_SPOOL_DATABASE]):
        restore.restore_at_start(database)  # without storage it warns: nowhere to store a seed either
        return
    with database.reloading():
        capture.set_aside(conn, seeded)
        restore.restore_at_start(database)
        capture.install_triggers(conn, seeded)
        capture.put_back(conn, seeded)


class SQLiteMode(Mode):
    """A SQLite database per process or per host, journaled under the spool lease (lease.py)."""

    def started_database(self) -> shared.SharedDatabase | None:
        key = getattr(connections[conf.MEMDB_NAME], "memdb_key", None)  # None: not our engine (E002)
        database = shared.existing(key()) if key else None
        return database if database is not None and database.ready else None

    def first_use(self, wrapper: Any) -> None:
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
                reused = self.reuse_file(database)
                # The project's migrations, as ``migrate --database <alias>`` runs them.
                call_command(
                    "migrate", database=wrapper.alias, run_syncdb=True,
                    verbosity=0, interactive=False, skip_checks=True,
                )
                conn = database.connection
                capture.install_change_table(conn)
                # Before the restore: a restored table keeps its bound too.
                bounds.install_triggers(conn, capture.existing_models(conn, bounds.bounded_models()))
                persistent = registry.persistent_models()
                if reused:
                    self.adopt(database)
                elif persistent:
                    restore_over_seeds(database, persistent)
                if not reused:
                    self.loaded(database)
                capture.install_triggers(conn, capture.existing_models(conn, persistent))
                expiry.forget_purges()  # a new database: purge at the first use
                database.ready = True
            finally:
                database.bootstrapping = None
            self.started(database, reused and bool(persistent))

    # Steps of the start-up that sharing the database with other processes adds.

    def reuse_file(self, database: shared.SharedDatabase) -> bool:
        """Whether the tables are already there, restored by another process."""
        return False

    def adopt(self, database: shared.SharedDatabase) -> None:
        """Take over what the process that restored the tables knows."""

    def loaded(self, database: shared.SharedDatabase) -> None:
        """This process restored the tables."""

    def started(self, database: shared.SharedDatabase, left_pending: bool) -> None:
        """The start-up is done; ``left_pending``: earlier users may have left changes."""

    # Lease and journal.

    def check_write(self, database: Any) -> None:
        lease.check(database, conf.MEMDB_SPOOL_DATABASE)

    def observe_load(self, database: Any, using: str) -> None:
        lease.observe(database, using)

    def observed(self, database: Any, generation: int, unless_claimed: bool = False) -> None:
        with database.lock:
            if unless_claimed and not lease.load_pending(database):
                return  # a claim since knows better
            lease.record(database, generation)

    def changes_committed(self, database: Any, raise_errors: bool) -> None:
        spool.changes_committed(database, raise_errors=raise_errors)

    def flush(self, database: Any, raise_errors: bool = False, log: bool = True) -> int:
        return spool.flush(database, raise_errors=raise_errors, log=log)

    def compact(self, database: Any, model: type[models.Model] | None = None) -> None:
        spool.compact(database, model)

    def at_exit(self, database: Any) -> None:
        if lease.holding(database):
            try:
                lease.release(database, conf.MEMDB_SPOOL_DATABASE)
            except Exception as exc:  # the process is leaving anyway
                logger.warning("django_memdb: could not release the spool lease: %s", exc)

    def not_stored(self, database: Any, cause: BaseException, waited: str) -> str:
        using = conf.MEMDB_SPOOL_DATABASE
        labels = spool.pending_labels(database) or "persistent tables"
        return (
            f"at exit, changes committed in memory to {labels} were NOT stored in the '{using}' "
            f"database{waited}: {cause}. They are lost with this process; a restart restores the "
            f"last state stored. Keep the '{using}' database reachable until the process has exited."
        )
