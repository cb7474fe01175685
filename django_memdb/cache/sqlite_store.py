"""Cache entries in the SQLite in-memory database (modes ``process`` and ``host``).

Every operation is one or two prepared statements on the process's shared
connection, under its lock (an open transaction of another thread holds it).
The ORM would cost about 100 µs a statement; these cost a few.

Reads are served from a per-process copy of the entries this process read or
wrote while the database is unchanged since (read_copy.py). Expiry is checked
on every read, so an expired value is never returned.

Bookkeeping stays inside the database, so that in ``host`` mode every process
of the host agrees on it: a state row per cache counts the entries and hands
out recency stamps (in ``process`` mode, where only this process inserts, the
store passes them itself), and triggers keep the count and evict the least recently
used entries when an insert takes the cache past its bound (expired entries
first), in the transaction of that insert. In ``process`` mode the eviction
takes the time from the state row, which the store moves before it inserts
(each batch of held sets, single sets at most a second apart): a function in
a trigger would make every insert of a batch keep a statement journal.

In ``process`` mode a cache that is not persistent holds its sets back and
writes them in one statement, up to ``HELD`` at a time (write-behind): the
statement per set and its triggers were most of a set's cost. When the held
sets cannot take the cache past its bound, the rows are written with the
kind's ``COUNTED`` bit, which the triggers skip, and counted in one update
of the state row: the triggers cost more than the rows themselves.
The database is the process's own, and every way to read it writes them
first: the store's other operations, any statement of the alias (the ORM,
the admin), the start of a transaction (a rollback must not take them), and
``memdb_status``. Reads of a held key are served from what is held.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from ..backend.shared import SharedDatabase
from ..conf import conf
from .read_copy import ReadCopy
from .wal_header import WalHeader

logger = logging.getLogger("django_memdb")

STATE = "django_memdb_cache_state"

# Unix time in SQL (unixepoch('subsec') needs SQLite 3.42).
_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_LIVE = "(expires IS NULL OR expires > ?)"
# Row changes (total_changes) of an insert that evicted nothing: the row, the
# state row, the row's change record if persistent. An eviction adds 2 or more.
_MOST_WITHOUT_EVICTION = 3
BOOST = 2
# Sets a process-mode store holds back at most (about 2 ms of writing under the lock).
HELD = 128
# Added to the kind of a row whose insert the writing store counts itself (codec.decode ignores it).
COUNTED = 2
# Values are bound as bytearray: sqlite3 binds it as it is, while bytes goes through its adapter
# registry (a failed attribute lookup, and so an exception, per value).


def _quote(name: str) -> str:
    return '"{}"'.format(name.replace('"', '""'))


def _literal(value: str) -> str:
    return "'{}'".format(value.replace("'", "''"))


class SQLiteStore:
    """The entries of one cache (one namespace) in one table of the in-memory database."""

    def __init__(
        self, database: SharedDatabase, table: str, cache: str, max_entries: int, cull: int, hold: bool = False
    ) -> None:
        self.database = database
        self.connection = database.connection
        self.lock = database.lock
        self.cache = cache
        t = _quote(table)
        state = f"(SELECT {{}} FROM {STATE} WHERE tbl = {_literal(table)} AND cache = ?)"
        seq = state.format("seq")
        self._table = table
        # Only this process inserts into a database of its own (process mode), see below.
        self.local = not getattr(database.mode, "shared_by_processes", True)
        self._setup_sql = self._setup_statements(table, t, self.local)
        self._state_sql = (
            f"INSERT INTO {STATE} (tbl, cache, entries, seq, max_entries, cull) "
            f"VALUES ({_literal(table)}, ?, (SELECT count(*) FROM {t} WHERE cache = ?), "
            f"coalesce((SELECT max(accessed) + 1 FROM {t} WHERE cache = ?), 0), ?, ?) "
            f"ON CONFLICT (tbl, cache) DO UPDATE SET entries = excluded.entries, "
            f"seq = max(seq, excluded.seq), max_entries = excluded.max_entries, cull = excluded.cull"
        )
        self._params_state = (cache, cache, cache, max_entries, cull)
        self._get = f"SELECT value, kind, expires, accessed FROM {t} WHERE key = ?"
        self._get_many = f"SELECT key, value, kind, expires, accessed FROM {t} WHERE key IN ({{}})"
        self._seq = f"SELECT seq, entries FROM {STATE} WHERE tbl = {_literal(table)} AND cache = ?"
        self._room = f"SELECT seq, max_entries - entries FROM {STATE} WHERE tbl = {_literal(table)} AND cache = ?"
        self._counted = (
            f"UPDATE {STATE} SET entries = entries + ?, seq = seq + ? WHERE tbl = {_literal(table)} AND cache = ?"
        )
        self._clock = f"UPDATE {STATE} SET now = max(now, ?) WHERE tbl = {_literal(table)} AND cache = ?"
        self._clock_at = 0.0
        # An entry read while older than this many inserts gets a new stamp: recently read
        # entries stay out of the evicted part without a write on every read.
        self.window = max(1, (max_entries - max(cull, 0)) // 2)
        self.seq = 0
        # Entries of the cache as this process last counted them: below what survives a cull,
        # no eviction is near and reads leave the stamps alone.
        self.entries = 0
        self.restamp_from = max(0, max_entries - max(cull, 0))
        self._reads = 0
        self.provisional = False
        self.copy = ReadCopy(self.connection, max_entries, not self.local)
        # In a database of its own, self.seq follows the state's seq: a write passes its stamp
        # instead of reading it with a subquery. In host mode the other processes' inserts
        # move it: the statement reads it.
        # Sets held back (write-behind, see the module docstring): key -> (value, kind, expires).
        self.holds = hold and self.local
        self.held: dict[str, tuple[bytes, int, float | None]] = {}
        # A read entry is stamped ahead of the inserts to come: entries read since their write
        # outlive entries only written (most of which a skewed key stream never reads again).
        self.boost = BOOST * max_entries
        self._bump = f"UPDATE {t} SET accessed = {seq} + {self.boost} WHERE key = ?"
        self._drop_expired = f"DELETE FROM {t} WHERE key = ? AND expires <= ?"
        stamp = "?" if self.local else seq
        columns = f"INSERT INTO {t} (key, cache, value, kind, expires, accessed) VALUES (?, ?, ?, ?, ?, {stamp}) "
        self._set = columns + (
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, kind = excluded.kind, "
            "expires = excluded.expires, accessed = excluded.accessed"
        )
        self._add = self._set + f" WHERE {t}.expires <= ?"
        # For keys known to be absent (write_held): OR FAIL, so that no statement journal is kept.
        self._insert_new = (
            f"INSERT OR FAIL INTO {t} (key, cache, value, kind, expires, accessed) VALUES (?, ?, ?, ?, ?, ?)"
        )
        self._touch = f"UPDATE {t} SET expires = ?, accessed = {seq} WHERE key = ? AND {_LIVE}"
        self._delete = f"DELETE FROM {t} WHERE key = ?"
        self._delete_many = f"DELETE FROM {t} WHERE key IN ({{}})"
        self._has = f"SELECT 1 FROM {t} WHERE key = ? AND {_LIVE}"
        self._read = f"SELECT value, kind, expires FROM {t} WHERE key = ? AND {_LIVE}"
        self._replace_value = f"UPDATE {t} SET value = ?, kind = ? WHERE key = ?"
        self._clear = f"DELETE FROM {t} WHERE cache = ?"

    @staticmethod
    def _setup_statements(table: str, t: str, local: bool) -> list[str]:
        where = f"tbl = {_literal(table)} AND cache = NEW.cache"
        # In a database of the process's own, the time is the state row's clock, which the store
        # moves before it inserts: a function in a trigger makes each insert inside a transaction
        # (a batch of held sets) keep a statement journal, a copy of every page it changes.
        now = f"(SELECT now FROM {STATE} WHERE {where})" if local else _NOW
        victims = (
            f"SELECT key FROM {t} WHERE cache = NEW.cache AND key <> NEW.key "
            f"ORDER BY (expires IS NOT NULL AND expires <= {now}) DESC, accessed "
            f"LIMIT (SELECT cull FROM {STATE} WHERE {where})"
        )
        name = "django_memdb_cache_" + table
        return [
            f"CREATE TABLE IF NOT EXISTS {STATE} (tbl TEXT NOT NULL, cache TEXT NOT NULL, "
            "entries INTEGER NOT NULL, seq INTEGER NOT NULL, max_entries INTEGER NOT NULL, "
            "cull INTEGER NOT NULL, now REAL NOT NULL DEFAULT 0, PRIMARY KEY (tbl, cache))",
            # Before 1.2 one trigger counted and evicted, running the eviction's query on every insert.
            f"DROP TRIGGER IF EXISTS {_quote(name + '_ins')}",
            # SQLite runs the triggers of an event newest first: the count is up to date when
            # the eviction's condition is checked, so the eviction trigger is created first.
            # Rows whose kind has the COUNTED bit are counted by the statement's writer (write_held).
            f"CREATE TRIGGER IF NOT EXISTS {_quote(name + '_evict')} AFTER INSERT ON {t} "
            f"WHEN NEW.kind < {COUNTED} AND (SELECT entries > max_entries FROM {STATE} WHERE {where}) BEGIN "
            f"DELETE FROM {t} WHERE key IN ({victims}); END",
            f"CREATE TRIGGER IF NOT EXISTS {_quote(name + '_count')} AFTER INSERT ON {t} "
            f"WHEN NEW.kind < {COUNTED} BEGIN "
            f"UPDATE {STATE} SET entries = entries + 1, seq = seq + 1 WHERE {where}; END",
            f"CREATE TRIGGER IF NOT EXISTS {_quote(name + '_del')} "
            f"AFTER DELETE ON {t} BEGIN "
            # OR FAIL: nested in the eviction trigger, an UPDATE that may abort makes every insert
            # inside a transaction keep a statement journal (write_held's plain inserts then keep none).
            f"UPDATE OR FAIL {STATE} SET entries = entries - 1 "
            f"WHERE tbl = {_literal(table)} AND cache = OLD.cache; END",
        ]

    def setup(self) -> None:
        """State table, triggers and this cache's state row (count taken afresh).

        Set up inside a transaction of this thread (a TestCase's), they may be
        rolled back with it: the store stays ``provisional`` and checks its
        state row before each operation until it is seen outside one.
        """
        self.provisional = self.connection.in_transaction
        with self.transaction() as conn:
            for statement in self._setup_sql:
                conn.execute(statement)
            conn.execute(self._state_sql, self._params_state)
            self.seq, self.entries = conn.execute(self._seq, (self.cache,)).fetchone()
            if self.copy.shared_by_processes and self.copy.header is None:
                self.copy.header = WalHeader.open(conn)

    def ensure(self) -> None:
        """Set up again what a rolled-back transaction took away (see ``setup``)."""
        conn = self.connection
        with self.lock:
            try:
                found = conn.execute(self._seq, (self.cache,)).fetchone() is not None
            except sqlite3.OperationalError:
                found = False  # no state table
            if not found:
                self.setup()
            elif not conn.in_transaction:
                self.provisional = False

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Several statements as one: a transaction, or a savepoint inside this thread's own."""
        conn = self.connection
        with self.lock:
            self.database.write_held()
            if conn.in_transaction:
                conn.execute("SAVEPOINT django_memdb_cache")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK TO django_memdb_cache")
                    conn.execute("RELEASE django_memdb_cache")
                    raise
                conn.execute("RELEASE django_memdb_cache")
                return
            # IMMEDIATE: in host mode, take the file's write lock first (no upgrade deadlock).
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _run(self, sql: str, params: Any) -> sqlite3.Cursor:
        """One statement; a transaction it opened implicitly (autocommit off elsewhere) is committed."""
        conn = self.connection
        with self.lock:
            self.database.write_held()
            opened = not conn.in_transaction
            cursor = conn.execute(sql, params)
            if opened and conn.in_transaction:
                conn.commit()
            return cursor

    # Reads

    def _stale(self, accessed: int) -> bool:
        """Whether a read entry needs a new recency stamp (the state row is re-read now and then)."""
        self._reads += 1
        if not self._reads & 63:
            self.seq, self.entries = self.connection.execute(self._seq, (self.cache,)).fetchone()
        return self.entries >= self.restamp_from and accessed < self.seq - self.window

    def get(self, key: str, now: float) -> tuple[bytes, int] | None:
        with self.lock:
            if self.held:
                found = self.held.get(key)
                if found is not None:
                    value, kind, expires = found
                    return None if expires is not None and expires <= now else (value, kind)
            copy = self.copy
            entry = copy.get(key)
            if entry is None:
                keep = copy.may_keep()
                entry = self.connection.execute(self._get, (key,)).fetchone()
                if entry is None:
                    return None
                if keep:
                    copy.keep(key, entry)
            value, kind, expires, accessed = entry
            if expires is not None and expires <= now:
                self._write(self._drop_expired, (key, now), {key: None})
                return None
            if self._stale(accessed):
                # The stamp the statement gives is the state's seq, which self.seq follows.
                self._write(self._bump, (self.cache, key), {key: (value, kind, expires, self.seq + self.boost)})
            return value, kind

    def get_many(self, keys: list[str], now: float) -> dict[str, tuple[bytes, int]]:
        found: dict[str, tuple[bytes, int]] = {}
        if not keys:
            return found
        with self.lock:
            self.database.write_held()
            rows = self.connection.execute(self._get_many.format(", ".join("?" * len(keys))), keys).fetchall()
            expired, stale = [], []
            for key, value, kind, expires, accessed in rows:
                if expires is not None and expires <= now:
                    expired.append(key)
                    continue
                if self._stale(accessed):
                    stale.append(key)
                found[key] = (value, kind)
            if expired or stale:
                with self.transaction() as conn:
                    conn.executemany(self._drop_expired, [(key, now) for key in expired])
                    conn.executemany(self._bump, [(self.cache, key) for key in stale])
        return found

    def has_key(self, key: str, now: float) -> bool:
        with self.lock:
            self.database.write_held()
            return self.connection.execute(self._has, (key, now)).fetchone() is not None

    def read(self, key: str, now: float) -> tuple[bytes, int, float | None] | None:
        """A live entry without touching its recency (inside ``transaction``)."""
        row = self.connection.execute(self._read, (key, now)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    # Writes

    def _write(self, sql: str, params: Any, changed: dict[str, Any] | None) -> sqlite3.Cursor:
        """One write statement; the read copy learns what it changed (None: forget the copy)."""
        with self.lock:
            self.database.write_held()  # first: their write is not this statement's change
            before = self.connection.total_changes
            cursor = self._run(sql, params)
            self.copy.wrote(before, changed)
            return cursor

    def _insert(self, sql: str, key: str, params: tuple[Any, ...], entry: tuple[Any, int, Any], *more: Any) -> bool:
        """set or add: the new entry, kept in the read copy unless the insert evicted entries.

        ``params`` come before the stamp, ``more`` after it.
        """
        conn = self.connection
        with self.lock:
            self.database.write_held()
            opened = not conn.in_transaction
            before = conn.total_changes
            self._tick(time.time(), every=1.0)
            mark = conn.total_changes
            inserted = conn.execute(sql, (*params, self.seq if self.local else self.cache, *more)).rowcount > 0
            if opened and conn.in_transaction:
                conn.commit()
            if not inserted:
                return False
            # The row, and the state row's update for a new key; an eviction adds at least
            # two changes per evicted entry (its deletion, the count), capture one per row.
            changes = conn.total_changes - mark
            accessed = self.seq
            if changes >= 2:
                self.seq += 1
                self.entries += 1
            self.copy.wrote(before, {key: (*entry, accessed)} if changes <= _MOST_WITHOUT_EVICTION else None)
            return True

    def _tick(self, now: float, every: float = 0.0) -> None:
        """Move the state row's clock, which the eviction trigger of a process-mode database reads
        to evict expired entries first (under the lock; at most ``every`` seconds late). Host
        mode's trigger asks SQLite for the time: nothing to move."""
        if self.local and now - self._clock_at >= every:
            self.connection.execute(self._clock, (now, self.cache))
            self._clock_at = now

    def set(self, key: str, value: bytes, kind: int, expires: float | None) -> None:
        if self.holds:
            with self.lock:
                if not self.connection.in_transaction:
                    held = self.held
                    if not held:
                        self.database.held.add(self)
                    held[key] = (value, kind, expires)
                    if len(held) >= HELD:
                        self.write_held()
                    return
        self._insert(self._set, key, (key, self.cache, bytearray(value), kind, expires), (value, kind, expires))

    def write_held(self) -> None:
        """Write the sets held back, in one statement (under the lock, any thread)."""
        held, self.held = self.held, {}
        self.database.held.discard(self)
        if not held:
            return
        cache, conn = self.cache, self.connection
        keys = list(held)
        try:
            # The savepoint of transaction() if a transaction is open (not begun through the alias).
            with self.transaction():
                before = conn.total_changes  # after the other stores' held sets, which transaction() wrote
                # Replaced keys go first (their delete trigger counts them out): the rows are then
                # plain inserts, whose statement needs no statement journal (an upsert's does, with
                # triggers on the table: a copy of every page it changes, inside a transaction).
                conn.execute(self._delete_many.format(", ".join("?" * len(keys))), keys)
                self._tick(time.time())
                seq, room = conn.execute(self._room, (cache,)).fetchone()
                # No insert can take the cache past its bound: the new keys are counted here, once,
                # instead of in the triggers of every row (which skip COUNTED rows).
                counted = len(keys) <= room
                bits = COUNTED if counted else 0
                entries: dict[str, Any] = {  # the read copy's entries (read_copy.Entry)
                    key: (value, kind | bits, expires, seq + number)
                    for number, (key, (value, kind, expires)) in enumerate(held.items())
                }
                inserting = conn.total_changes
                conn.executemany(self._insert_new, [
                    (key, cache, bytearray(value), kind, expires, accessed)
                    for key, (value, kind, expires, accessed) in entries.items()
                ])
                if counted:
                    conn.execute(self._counted, (len(keys), len(keys), cache))
                self.seq, self.entries = conn.execute(self._seq, (cache,)).fetchone()
        except sqlite3.Error as exc:
            # Written on the way to any statement of the alias: its own error is not this one.
            logger.warning("MemDBCache %r: %d entries held back could not be written, the cache lost them: %s",
                           cache, len(held), exc)
            self.copy.wrote(0, None)
            return
        # Each insert changes its row and, through the count trigger, the state row: more is an eviction.
        evicted = not counted and conn.total_changes - inserting > 2 * len(keys)
        self.copy.wrote(before, None if evicted else entries)

    def set_many(self, items: Iterable[tuple[str, bytes, int]], expires: float | None) -> None:
        cache = self.cache
        with self.lock:
            with self.transaction() as conn:
                self._tick(time.time())
                conn.executemany(self._set, [
                    (key, cache, bytearray(value), kind, expires, self.seq + number if self.local else cache)
                    for number, (key, value, kind) in enumerate(items)
                ])
                self.seq, self.entries = conn.execute(self._seq, (cache,)).fetchone()
            self.copy.wrote(0, None)  # evictions unknown: forgotten

    def add(self, key: str, value: bytes, kind: int, expires: float | None, now: float) -> bool:
        return self._insert(
            self._add, key, (key, self.cache, bytearray(value), kind, expires), (value, kind, expires), now
        )

    def replace_value(self, key: str, value: bytes, kind: int) -> None:
        """Inside ``transaction``: the copy is forgotten once it commits (total_changes moved)."""
        self.connection.execute(self._replace_value, (bytearray(value), kind, key))

    def touch(self, key: str, expires: float | None, now: float) -> bool:
        return self._write(self._touch, (expires, self.cache, key, now), {key: None}).rowcount > 0

    def delete(self, key: str) -> bool:
        return self._write(self._delete, (key,), {key: None}).rowcount > 0

    def delete_many(self, keys: list[str]) -> None:
        if keys:
            self._write(self._delete_many.format(", ".join("?" * len(keys))), keys, dict.fromkeys(keys))

    def clear(self) -> None:
        with self.lock:
            self.held.clear()  # the statement below would delete them: not worth writing
            self._write(self._clear, (self.cache,), None)

    def written(self) -> None:
        """After a write to a persistent table: journal it as a statement of the alias would."""
        if self.database.dirty and not self.database.flushing:
            wrapper: Any = connections[conf.MEMDB_NAME]  # the engine's (backend/base.py)
            wrapper.ensure_connection()
            wrapper.memdb_schedule_flush()

    def close(self) -> None:
        """Let go of what the store holds beside the connection (in a forked child: one thread)."""
        header, self.copy.header = self.copy.header, None
        if header is not None:
            header.close()

    def count(self) -> int:
        with self.lock:
            self.database.write_held()
            return int(self.connection.execute(
                f"SELECT count(*) FROM {_quote(self._table)} WHERE cache = ?", (self.cache,)
            ).fetchone()[0])

