"""Mode ``cluster``: the tables live on a PostgreSQL or MariaDB server every process shares.

The alias is the server's own Django backend (cluster/engines.py); any process
may journal the changes every process recorded, one at a time under the
server lock (cluster/spool.py), so there is no lease: one copy, on the server.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage
from django.db import connections, models

from .. import bounds, identity
from ..cluster import checks, engines, state
from ..cluster import lifecycle as tables
from ..cluster import spool as cluster_spool
from ..conf import conf
from .base import Mode


class ClusterMode(Mode):
    name = "cluster"
    tables_on_server = True

    def row_bounds_refusal(self, model: type[models.Model]) -> str | None:
        """On PostgreSQL a trigger of the server's table evicts the oldest rows (cluster/dialect.py)."""
        if connections[conf.MEMDB_NAME].vendor != "postgresql":
            return (
                "cluster mode keeps it on PostgreSQL only (on MariaDB/MySQL a trigger may not "
                "delete from the table that fired it)"
            )
        if bounds.eviction(model) != bounds.OLDEST:
            return (
                f"cluster mode evicts only memdb_eviction = '{bounds.OLDEST}' (the use order of "
                f"'{bounds.LRU}' is known per process, and the table is shared by every host)"
            )
        return None

    def wrapper(self, settings_dict: dict[str, Any], alias: str) -> Any | None:
        return engines.wrapper_for(settings_dict, alias)

    def started_database(self) -> state.ClusterState | None:
        found = state.existing()
        wrapper = connections[conf.MEMDB_NAME]
        if found is None or not found.ready or found.name != str(wrapper.settings_dict["NAME"]):
            return None
        return found

    def first_use(self, wrapper: Any) -> None:
        tables.connected(wrapper)

    def check_write(self, database: Any) -> None:
        pass  # any process may write: flushes take turns under the server lock

    def observe_load(self, database: Any, using: str) -> None:
        pass

    def changes_committed(self, database: Any, raise_errors: bool) -> None:
        cluster_spool.changes_committed(database, raise_errors=raise_errors)

    def flush(self, database: Any, raise_errors: bool = False, log: bool = True) -> int:
        return cluster_spool.flush(database, raise_errors=raise_errors, log=log)

    def compact(self, database: Any, model: type[models.Model] | None = None) -> None:
        cluster_spool.compact(database, model)

    def at_exit(self, database: Any) -> None:
        pass

    def not_stored(self, database: Any, cause: BaseException, waited: str) -> str:
        return (
            f"at exit, changes committed to the in-memory tables were NOT stored in the "
            f"'{conf.MEMDB_SPOOL_DATABASE}' database{waited}: {cause}. They stay in the server's in-memory "
            f"tables, where the next flush of any process of the cluster stores them, unless the server "
            f"loses those tables first."
        )

    def request_started(self) -> None:
        # Other processes' commits are seen from the next request on.
        identity.clear(conf.MEMDB_NAME)

    def checks(self) -> list[CheckMessage]:
        return checks.check_cluster()
