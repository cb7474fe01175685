"""Host mode: the processes of one host share one SQLite file on tmpfs.

Each process holds a shared lock on ``<file>.alive``; the first process to
open the file (no lock held by anyone) decides what it holds: a file left by
processes that are gone is kept if it is as new as storage (same lease
generation: its unwritten changes are then written), and rebuilt from
storage otherwise. The other processes join. Opening is serialised by ``<file>.boot``, held until the opener's
start-up (migrate, restore) is done, and flushes by ``<file>.spool``, so
exactly one process writes to storage at a time; a process that dies lets go
of its locks, and the next flush by any process takes its pending changes.

The files hold the tables in clear and their locks gate every process, so
they live in a directory of the user's own (``django_memdb-<uid>``, 0700)
inside the configured directory, are 0600, are never opened through a
symbolic link, and one made by anybody else is refused (private_files.py).
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.utils import load_backend

from ..conf import default_directory as default_directory
from . import shared
from .private_files import claim_private_file, ensure_private_directory, open_private_file, private_directory

# What SQLite makes next to the file; each is made ours before SQLite opens it.
SQLITE_SUFFIXES = ("", "-wal", "-shm")


def path_for(name: str, spool: Mapping[str, Any], directory: str) -> str:
    """One file per in-memory database name and storage, in this user's directory.

    Two projects must never share a file: the name hashes everything that
    tells one storage from another, SQLite names resolved to real paths.
    """
    identity = json.dumps([str(name), storage_identity(spool)], sort_keys=True, default=_stable)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return os.path.join(private_directory(directory), f"django_memdb-{digest}.sqlite3")


def storage_identity(spool: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of the storage database that say which database (and schema) it is."""
    identity = {key: spool.get(key) for key in ("ENGINE", "NAME", "HOST", "PORT", "USER", "OPTIONS")}
    name = identity["NAME"]
    if name and _is_sqlite(str(identity["ENGINE"])):
        text = os.fspath(name)
        if not (text == ":memory:" or text.startswith("file:")):
            # ``db.sqlite3`` of one project is not that of another started elsewhere.
            identity["NAME"] = os.path.realpath(text)
    return identity


def _is_sqlite(engine: str) -> bool:
    try:
        return bool(load_backend(engine).DatabaseWrapper.vendor == "sqlite")
    except ImproperlyConfigured:  # Django reports a broken ENGINE on that database's first use
        return False


def _stable(value: Any) -> str:
    """The same text in every process: a repr may hold a memory address."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__module__}.{type(value).__qualname__}.{value.name}"
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "__module__") and hasattr(value, "__qualname__"):
        return f"{value.__module__}.{value.__qualname__}"
    return f"{type(value).__module__}.{type(value).__qualname__}"


class HostFiles:
    """The lock files of one host database, held by this process."""

    def __init__(self, path: str) -> None:
        self.path = path
        # path_for put the file in this user's directory of MEMDB_HOST_DIRECTORY.
        ensure_private_directory(os.path.dirname(os.path.dirname(path)))
        self._alive = open_private_file(path + ".alive")  # held for life
        self._boot: int | None = None
        try:
            self._boot = open_private_file(path + ".boot")
            self._spool_path = path + ".spool"
            claim_private_file(self._spool_path)  # refused now rather than at the first flush
        except BaseException:
            self.close()
            raise
        self.first = False

    def open(self, connect: Callable[[str], sqlite3.Connection]) -> sqlite3.Connection:
        assert self._boot is not None
        try:
            fcntl.flock(self._boot, fcntl.LOCK_EX)
            try:
                fcntl.flock(self._alive, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.first = True
            except BlockingIOError:
                self.first = False
            self._connect = connect
            connection = self._open()
            fcntl.flock(self._alive, fcntl.LOCK_SH)
        except BaseException:
            self.close()  # a refused file must not leave the host's start-up lock held
            raise
        return connection

    def close(self) -> None:
        """Let go of the locks of a process that could not open the file."""
        if self._boot is not None:
            os.close(self._boot)
            self._boot = None
        os.close(self._alive)

    def _open(self) -> sqlite3.Connection:
        for suffix in SQLITE_SUFFIXES:
            claim_private_file(self.path + suffix)
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
            os.close(self._boot)
            self._boot = None

    @contextlib.contextmanager
    def spooling(self) -> Iterator[None]:
        descriptor = open_private_file(self._spool_path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def open_database(
    key: str, conn_params: dict[str, Any], open_sqlite: Callable[[dict[str, Any]], Any], mode: Any
) -> shared.SharedDatabase:
    """The host's shared file ``key`` as this process's shared database, opened on first use."""

    def connect() -> shared.SharedDatabase:
        files = HostFiles(key)
        params = {**conn_params, "timeout": 60.0}
        connection = files.open(lambda file: open_sqlite({**params, "database": file}))
        return shared.SharedDatabase(key, connection, mode, files)

    return shared.get(key, connect)


MARKER = "django_memdb_host"


def read_marker(connection: sqlite3.Connection) -> tuple[str, int] | None:
    connection.execute(f'CREATE TABLE IF NOT EXISTS "{MARKER}" (token TEXT NOT NULL, generation INTEGER NOT NULL)')
    row = connection.execute(f'SELECT token, generation FROM "{MARKER}"').fetchone()
    return (row[0], row[1]) if row else None


def write_marker(connection: sqlite3.Connection, token: str, generation: int) -> None:
    """Only when it changed: every commit to the shared file makes every process of the host
    drop what it keeps of it (read copies, identity maps), and this runs at each flush."""
    if read_marker(connection) == (token, generation):
        return
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
