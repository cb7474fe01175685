"""What the engine asks of the layers above it, without importing them.

The engine opens and shares the connection and calls back when a connection
is ready and when changes became committed; everything else (restore,
journal, lease) lives above it. The persistence layer uses ``flush_started``
for the same reason. ``AppConfig.ready()`` installs the hooks of
the app (lifecycle.install); until then, or when the app is not installed,
the alias is a plain SQLite database shared by the threads of the process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from . import shared

OpenSQLite = Callable[[dict[str, Any]], Any]


class Opening(Protocol):
    """How a mode opens and shares the in-memory database (modes/base.py implements it)."""

    # False: a SQLite database of the process or the host (a SharedDatabase);
    # True: the tables of a server every process shares (cluster mode).
    tables_on_server: bool

    def wrapper(self, settings_dict: dict[str, Any], alias: str) -> Any | None:
        """Another wrapper for the alias, or None for the SQLite engine itself."""

    def database_key(self, name: str) -> str:
        """The name of the database in the process registry (shared.py)."""

    def open(self, key: str, conn_params: dict[str, Any], open_sqlite: OpenSQLite) -> shared.SharedDatabase:
        """The shared database ``key``, opened on first use."""

    def begin(self, wrapper: Any) -> bool:
        """Start a transaction under autocommit itself (True), or leave it to SQLite's engine."""


class Hooks(Protocol):
    def opening(self) -> Opening:
        """The current mode's way of opening the database."""

    def connected(self, wrapper: Any) -> None:
        """A connection of the alias is ready: set the database up on its first use."""

    def changes_committed(self, database: Any, raise_errors: bool) -> None:
        """Changes to persistent tables became committed."""

    def flush_started(self) -> None:
        """Flush what the database this process started has pending (after a spool commit)."""


class PlainOpening:
    """One SQLite database per NAME, shared by the threads of this process."""

    tables_on_server = False

    def wrapper(self, settings_dict: dict[str, Any], alias: str) -> Any | None:
        return None

    def database_key(self, name: str) -> str:
        return name

    def open(self, key: str, conn_params: dict[str, Any], open_sqlite: OpenSQLite) -> shared.SharedDatabase:
        return shared.get(key, lambda: shared.SharedDatabase(key, open_sqlite(conn_params), self))

    def begin(self, wrapper: Any) -> bool:
        return False


class PlainHooks:
    """Before the app is ready: no persistence to set up or to call."""

    def opening(self) -> Opening:
        return PLAIN

    def connected(self, wrapper: Any) -> None:
        pass

    def changes_committed(self, database: Any, raise_errors: bool) -> None:
        pass

    def flush_started(self) -> None:
        pass


PLAIN = PlainOpening()
_installed: Hooks = PlainHooks()


def install(hooks: Hooks) -> None:
    global _installed
    _installed = hooks


def installed() -> Hooks:
    return _installed
