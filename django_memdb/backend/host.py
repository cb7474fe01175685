"""Host mode: the processes of one host share one SQLite file on tmpfs.

Each process holds a shared lock on ``<file>.alive``; the first process to
open the file (no lock held by anyone) decides what it holds: a file left by
processes that are gone is kept if it is as new as storage (same lease
generation: its unwritten changes are then written), and rebuilt from
storage otherwise. The other processes join. Opening is serialised by ``<file>.boot``, held until the opener's
start-up (migrate, restore) is done, and flushes by ``<file>.spool``, so
exactly one process writes to storage at a time; a process that dies lets go
of its locks, and the next flush by any process takes its pending changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from typing import IO


def default_directory() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def path_for(name: str, spool: dict[str, object], directory: str) -> str:
    """One file per in-memory database name and storage database."""
    key = "|".join(str(spool.get(k, "")) for k in ("ENGINE", "NAME", "HOST", "PORT"))
    digest = hashlib.sha256(f"{name}|{key}".encode()).hexdigest()[:20]
    return os.path.join(directory, f"django_memdb-{digest}.sqlite3")


class HostFiles:
    """The lock files of one host database, held by this process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._alive: IO[bytes] = open(path + ".alive", "ab")  # noqa: SIM115 - held for life
        self._boot: IO[bytes] | None = open(path + ".boot", "ab")  # noqa: SIM115
        self._spool_path = path + ".spool"
        self.first = False

    def open(self, connect: Callable[[str], sqlite3.Connection]) -> sqlite3.Connection:
        assert self._boot is not None
        fcntl.flock(self._boot, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.first = True
        except BlockingIOError:
            self.first = False
        self._connect = connect
        connection = self._open()
        fcntl.flock(self._alive, fcntl.LOCK_SH)
        return connection

    def _open(self) -> sqlite3.Connection:
        connection = self._connect(self.path)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = OFF")  # tmpfs: storage is the durable copy
        return connection

    def rebuild(self, connection: sqlite3.Connection) -> sqlite3.Connection:
        """An empty file instead of one older than storage (first process only)."""
        connection.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path + suffix)
        return self._open()

    def started(self) -> None:
        """Let the next process open the file (this one finished its start-up)."""
        if self._boot is not None:
            fcntl.flock(self._boot, fcntl.LOCK_UN)
            self._boot.close()
            self._boot = None

    @contextlib.contextmanager
    def spooling(self) -> Iterator[None]:
        with open(self._spool_path, "ab") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


MARKER = "django_memdb_host"


def read_marker(connection: sqlite3.Connection) -> tuple[str, int] | None:
    connection.execute(f'CREATE TABLE IF NOT EXISTS "{MARKER}" (token TEXT NOT NULL, generation INTEGER NOT NULL)')
    row = connection.execute(f'SELECT token, generation FROM "{MARKER}"').fetchone()
    return (row[0], row[1]) if row else None


def write_marker(connection: sqlite3.Connection, token: str, generation: int) -> None:
    read_marker(connection)
    connection.execute(f'DELETE FROM "{MARKER}"')
    connection.execute(f'INSERT INTO "{MARKER}" (token, generation) VALUES (?, ?)', (token, generation))


# Tables whose stored data could not be restored: every process of the host
# refuses them, not only the one that ran the restore.
FAILURES = "django_memdb_host_failed"


def _failures_table(connection: sqlite3.Connection) -> None:
    connection.execute(
        f'CREATE TABLE IF NOT EXISTS "{FAILURES}" (tbl TEXT PRIMARY KEY, message TEXT NOT NULL)'
    )


def record_failure(connection: sqlite3.Connection, table: str, message: str) -> None:
    _failures_table(connection)
    connection.execute(f'INSERT OR REPLACE INTO "{FAILURES}" (tbl, message) VALUES (?, ?)', (table, message))


def clear_failure(connection: sqlite3.Connection, table: str) -> None:
    _failures_table(connection)
    connection.execute(f'DELETE FROM "{FAILURES}" WHERE tbl = ?', (table,))


def read_failures(connection: sqlite3.Connection) -> dict[str, str]:
    """Message of each blocked table, by table name."""
    _failures_table(connection)
    return dict(connection.execute(f'SELECT tbl, message FROM "{FAILURES}"').fetchall())
