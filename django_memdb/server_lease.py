"""The lease the database server keeps: a session-level advisory lock (see lease.py).

On PostgreSQL and MariaDB, in a mode whose processes each keep their own
copy (``Mode.server_lease``), the writing process holds
``pg_try_advisory_lock`` / ``GET_LOCK`` on a storage connection of its own.
The server releases such a lock when the session ends, however it ended
(exit, SIGKILL, a connection the server dropped), so that another process
knows at once whether the writer is still there. Django's per-thread
connections are closed at the end of each request, which would release the
lock: this one is created outside the connection handler, shared by the
threads of the process under a mutex, and closed only at exit.

While the lock is held and the lease row was claimed on the same session,
journal entries are plain INSERTs on that connection: one that commits ran
on a session that held the lock, so no other process was writing.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from django.db import DatabaseError, Error, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from .conf import conf

# Per vendor: (take it without waiting, release it); %s is the lock's key.
_SQL = {
    "postgresql": ("SELECT pg_try_advisory_lock(%s)", "SELECT pg_advisory_unlock(%s)"),
    "mysql": ("SELECT GET_LOCK(%s, 0)", "SELECT RELEASE_LOCK(%s)"),
}


def applies(database: Any, spool: BaseDatabaseWrapper) -> bool:
    """Whether the lease of ``database`` is the server's lock on this spool database."""
    return getattr(database.mode, "server_lease", False) and spool.vendor in _SQL


def _key(spool: BaseDatabaseWrapper) -> Any:
    name = f"django_memdb:{conf.MEMDB_NAME}"
    if spool.vendor == "postgresql":  # advisory locks are per database already
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    # GET_LOCK is server-wide and takes at most 64 characters.
    digest = hashlib.sha256(f"{spool.settings_dict['NAME']}:{name}".encode()).hexdigest()[:40]
    return f"django_memdb:{digest}"


class ServerLock:
    """The lock of one spool alias and the connection (session) that holds it."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.mutex = threading.Lock()
        self.connection: BaseDatabaseWrapper | None = None
        self.held = False
        # Bumped for each new session: a claim counts for the session it ran under.
        self.session = 0
        # (token, generation, session) of the last claim of the lease row (lease.claim).
        self.claimed: tuple[str | None, int, int] | None = None

    def _connect(self) -> BaseDatabaseWrapper:
        if self.connection is None:
            wrapper = connections.create_connection(self.alias)
            wrapper.inc_thread_sharing()  # used by whichever thread flushes, one at a time
            self.connection = wrapper
            self.session += 1
            self.held, self.claimed = False, None
        return self.connection

    def _query(self, sql: str, connection: BaseDatabaseWrapper) -> Any:
        with connection.cursor() as cursor:
            cursor.execute(sql, [_key(connection)])
            return cursor.fetchone()[0]

    def drop(self) -> None:
        """Forget the session (the server ends it, and with it the lock)."""
        connection, self.connection = self.connection, None
        self.held, self.claimed = False, None
        if connection is not None:
            try:
                connection.close()
            except Error:
                pass  # a dropped connection may complain on close; it is gone all the same

    def _guarded(self, work: Callable[[BaseDatabaseWrapper], Any]) -> Any:
        """``work(connection)``; on an error, a session the server dropped is forgotten."""
        connection = self._connect()
        try:
            return work(connection)
        except Error:
            try:
                usable = connection.is_usable()
            except Error:
                usable = False
            if not usable:
                self.drop()
            raise

    def acquire(self) -> bool:
        """Take the lock (a new session if the last one died); False if another session holds it."""
        with self.mutex:
            if self.held:
                return True
            lock = _SQL[self._connect().vendor][0]
            self.held = bool(self._guarded(lambda connection: self._query(lock, connection)))
            return self.held

    def held_elsewhere(self) -> bool:
        """Whether another session holds the lock (probed: taken and given back at once)."""
        with self.mutex:
            if self.held:
                return False
            lock, unlock = _SQL[self._connect().vendor]

            def probe(connection: BaseDatabaseWrapper) -> bool:
                if not self._query(lock, connection):
                    return True
                self._query(unlock, connection)
                return False

            return bool(self._guarded(probe))

    def append(
        self, database: Any, spool: BaseDatabaseWrapper, entries: Sequence[tuple[Any, Any]],
        write: Callable[..., None],
    ) -> bool:
        """``write(model, items, connection)`` for each entry, in one transaction, on the
        lock's session; False (nothing written) unless this session holds the lock and
        claimed the lease as ``database`` knows it."""
        with self.mutex:
            if not self.held or self.claimed != (database.lease_token, database.lease_generation, self.session):
                return False
            connection = self.connection
            assert connection is not None

            def appended(connection: BaseDatabaseWrapper) -> bool:
                if len(entries) == 1:
                    write(*entries[0], connection)
                    return True
                connection.set_autocommit(False)
                try:
                    for model, items in entries:
                        write(model, items, connection)
                    connection.commit()
                except BaseException:
                    connection.rollback()
                    raise
                finally:
                    connection.set_autocommit(True)
                return True

            try:
                return bool(self._guarded(appended))
            except DatabaseError:
                if self.connection is None:
                    _forget_if_dropped(spool)
                # The full path (a claim, which takes the lock again) writes it or reports.
                return False

    def release(self) -> None:
        with self.mutex:
            self.drop()


def _forget_if_dropped(spool: BaseDatabaseWrapper) -> None:
    """The server ended the lock's session: whatever ended it (a restart) may have ended
    the thread's idle connection too, which the full path is about to use."""
    if spool.connection is None or spool.in_atomic_block:
        return
    try:
        usable = spool.is_usable()
    except Error:
        usable = False
    if not usable:
        try:
            spool.close()
        except Error:
            pass


_locks: dict[str, ServerLock] = {}
_locks_guard = threading.Lock()


def lock(alias: str) -> ServerLock:
    """The server lock of the spool alias ``alias`` in this process."""
    found = _locks.get(alias)
    if found is None:
        with _locks_guard:
            found = _locks.setdefault(alias, ServerLock(alias))
    return found


def claimed(database: Any, alias: str) -> Callable[[], None]:
    """What lease.claim runs once its transaction committed: the lease row names this
    process with its new generation, claimed on the session that holds the lock now.

    Not before the commit: a claim rolled back later (a TestCase's transaction)
    must not let plain INSERTs through without the row.
    """
    found = lock(alias)
    mine = (database.lease_token, database.lease_generation, found.session)

    def committed() -> None:
        with found.mutex:
            if found.held and found.session == mine[2]:
                found.claimed = mine

    return committed


def forget_claims() -> None:
    """The next write claims the lease again (and so checks the table's snapshot):
    for code that emptied storage behind this process, as a test run does between tests."""
    for found in list(_locks.values()):
        with found.mutex:
            found.claimed = None


def release_all() -> None:
    """Give the locks back and close their sessions (exit; the end of a test run)."""
    for found in list(_locks.values()):
        found.release()


# The journal's highest id when this process loaded storage (lease.observe),
# per database: entries a writer appended after the load have higher ones.
_watermarks: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def loaded(database: Any, watermark: int) -> None:
    _watermarks[database] = watermark


def watermark(database: Any) -> int | None:
    return _watermarks.get(database)
