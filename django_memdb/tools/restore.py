"""``restore()`` at its 0.0.6 import path."""

from __future__ import annotations

from collections.abc import Iterable

from .. import lifecycle
from ..models import PersistentStorage


def restore(query: Iterable[PersistentStorage] | None = None) -> None:
    """Restore in-memory tables from the given PersistentStorage rows, or from all.

    Rows are loaded over what memory holds (an update or insert per row), with
    each table's journal; afterwards storage matches memory again. Sets
    ``MEMDB_RESTORED``. Raises RestoreError naming every table it could not load.
    """
    lifecycle.restore_rows(lifecycle.current_database(), query)


__all__ = ["restore"]
