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

    def rebuild(self, connection: sqlite3.Connection) -> None:
        """Empty the file, older than storage (first process only).

        In place, through the same connection: other threads of this process
        may already hold it, and must find it open.
        """
        empty = sqlite3.connect(":memory:")
        try:
            # The backup API refuses to copy into a WAL file with other pages.
            empty.execute(f"PRAGMA page_size = {connection.execute('PRAGMA page_size').fetchone()[0]:d}")
            empty.backup(connection)
        finally:
            empty.close()

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
