"""The one interface of the modes: each MEMDB_MODE is one class implementing it.

A mode says how the in-memory database is opened and shared (asked by the
engine through backend.hooks), who may write storage (asked by the
persistence layer through ``database.mode``, see sharing.py), what happens at
first use and at exit, and what is reported. The rest of the code asks the
mode and never branches on which mode it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.core.checks import CheckMessage
from django.db import models

from ..backend.hooks import PlainOpening


class Mode(PlainOpening, ABC):
    """Opening and sharing (backend.hooks.Opening) are by default PlainOpening's: one
    SQLite database per NAME, shared by the threads of this process."""

    name: str = ""
    # Whether memdb_max_rows (bounds.py) is enforced: SQLite triggers.
    # Whether other processes commit to the same SQLite database (caches of it must check).
    shared_by_processes = False
    # Whether the spool lease is the server's advisory lock when storage is on
    # PostgreSQL or MariaDB (server_lease.py): one writing process, alone.
    server_lease = False

    def row_bounds_refusal(self, model: type[models.Model]) -> str | None:
        """Why this mode cannot keep ``model``'s memdb_max_rows (check E016); None if it can."""
        return None

    # The database of this process.

    @abstractmethod
    def started_database(self) -> Any | None:
        """The database the alias names now, if this process started it (see lifecycle)."""

    @abstractmethod
    def first_use(self, wrapper: Any) -> None:
        """Set the database up for this process: tables, restore, capture."""

    # Who may write storage (sharing.Sharing): by default this process alone.

    @abstractmethod
    def check_write(self, database: Any) -> None:
        """Refuse early a write that could not be stored (PersistenceError)."""

    @abstractmethod
    def observe_load(self, database: Any, using: str) -> None:
        """This process is about to load storage into memory."""

    def spooling(self, database: Any) -> AbstractContextManager[None]:
        return nullcontext()

    def observed(self, database: Any, generation: int, unless_claimed: bool = False) -> None:
        """Nothing to share: lease.py keeps the generation on the database."""
        return None

    def record_failure(self, database: Any, table: str, message: str) -> None:
        """Nothing to share: ``database.failed`` holds the table."""
        return None

    def clear_failure(self, database: Any, table: str) -> None:
        return None

    def blocked(self, database: Any) -> dict[type[models.Model], Exception]:
        """The tables whose restore failed, as every process sharing the database sees them."""
        return dict(database.failed)

    def still_blocked(self, database: Any, model: type[models.Model]) -> bool:
        """Whether a table this process refuses is still blocked (another process may have restored it)."""
        return True

    # Storing.

    @abstractmethod
    def changes_committed(self, database: Any, raise_errors: bool) -> None:
        """Changes to persistent tables became committed: journal them, or leave them to the flusher."""

    @abstractmethod
    def flush(self, database: Any, raise_errors: bool = False, log: bool = True) -> int:
        """Journal what is pending; the number of rows journaled."""

    @abstractmethod
    def compact(self, database: Any, model: type[models.Model] | None = None) -> None:
        """Flush, then rewrite the snapshot of ``model`` (or of every persistent table)."""

    # Exit and reports.

    @abstractmethod
    def at_exit(self, database: Any) -> None:
        """After the last flush of the process."""

    @abstractmethod
    def not_stored(self, database: Any, cause: BaseException, waited: str) -> str:
        """What was lost when the exit flush failed, and what to do."""

    # The identity map (identity.py) and other processes' commits.

    def identity_validator(self, database: Any, alias: str) -> Any | None:
        """What tells the map of a new connection about other processes' commits; None: none can happen."""
        return None

    def request_started(self) -> None:
        """A request starts: what the map must forget of other processes' commits."""
        return None

    def checks(self) -> list[CheckMessage]:
        """System check messages about this mode's settings."""
        return []
