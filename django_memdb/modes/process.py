"""Mode ``process``: each process holds its own in-memory copy; one of them writes storage."""

from __future__ import annotations

from .sqlite import SQLiteMode


class ProcessMode(SQLiteMode):
    """An in-memory SQLite database per process: every default of SQLiteMode."""

    name = "process"
    server_lease = True
