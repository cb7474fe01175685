"""What the persistence layer asks the mode that opened a database (``database.mode``).

Who may write storage at a time (nobody else in mode ``process``, one process
of the host in mode ``host``), whose lease a load of storage records, and
whether the tables a restore could not load are refused by this process
only or by every process of the host. The modes (modes/) implement it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, cast


class Sharing(Protocol):
    def spooling(self, database: Any) -> AbstractContextManager[None]:
        """Around a write to storage: the processes sharing the database take turns."""

    def observed(self, database: Any, generation: int, unless_claimed: bool = False) -> None:
        """Record the lease generation of this process's load of storage (lease.observe)."""

    def record_failure(self, database: Any, table: str, message: str) -> None:
        """A table could not be restored: refused wherever the database is shared."""

    def clear_failure(self, database: Any, table: str) -> None:
        """A table was restored: no longer refused."""


def of(database: Any) -> Sharing:
    return cast(Sharing, database.mode)
