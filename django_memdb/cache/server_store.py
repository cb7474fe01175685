"""Cache entries on the cluster's server (``cluster`` mode, PostgreSQL ``UNLOGGED`` tables).

Same operations as sqlite_store.py, through the alias's Django connection
with plain SQL. The bound is kept by the writer: an insert that takes the
cache past MAX_ENTRIES evicts the least recently used entries in its own
transaction, under a transaction-scoped advisory lock of the cache. The lock
comes first in that transaction: a writer that locked rows before waiting for
it would deadlock with the holder evicting or rewriting those rows.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction


def require_postgresql(alias: str, cache: str) -> None:
    """Refuse a cluster on MariaDB/MySQL before anything looks for the cache's tables there."""
    if connections[alias].vendor != "postgresql":
        raise ImproperlyConfigured(
            f"MemDBCache {cache!r} in cluster mode needs PostgreSQL: MariaDB/MySQL MEMORY tables "
            f"cannot hold its BLOB values. Use MEMDB_MODE 'host', or a PostgreSQL cluster database, "
            f"or another cache backend for CACHES in this deployment."
        )


class ServerStore:
    database = None  # no process-local database to compare with (see backend._resolve)
    provisional = False  # nothing set up that a rollback could take away

    def __init__(self, alias: str, table: str, cache: str, max_entries: int, cull: int) -> None:
        self.alias = alias
        self.cache = cache
        self.max_entries = max_entries
        self.cull = cull
        self.lock_id = zlib.crc32(f"django_memdb.cache:{table}:{cache}".encode())
        require_postgresql(alias, cache)
        wrapper = connections[alias]
        t = wrapper.ops.quote_name(table)
        live = "(expires IS NULL OR expires > %s)"
        self._get = f"SELECT value, kind, expires FROM {t} WHERE key = %s"
        self._get_many = f"SELECT key, value, kind, expires FROM {t} WHERE key = ANY(%s)"
        self._drop_expired = f"DELETE FROM {t} WHERE key = %s AND expires <= %s"
        self._drop_expired_many = f"DELETE FROM {t} WHERE key = ANY(%s) AND expires <= %s"
        self._next = f"SELECT coalesce(max(accessed), 0) + 1 FROM {t} WHERE cache = %s"
        self._set = (
            f"INSERT INTO {t} (key, cache, value, kind, expires, accessed) VALUES (%s, %s, %s, %s, %s, "
            f"({self._next})) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, kind = EXCLUDED.kind, "
            f"expires = EXCLUDED.expires, accessed = EXCLUDED.accessed"
        )
        self._add = self._set + f" WHERE {t}.expires <= %s"
        self._touch = f"UPDATE {t} SET expires = %s, accessed = ({self._next}) WHERE key = %s AND {live}"
        self._delete = f"DELETE FROM {t} WHERE key = %s"
        self._delete_many = f"DELETE FROM {t} WHERE key = ANY(%s)"
        self._has = f"SELECT 1 FROM {t} WHERE key = %s AND {live}"
        self._read = f"SELECT value, kind, expires FROM {t} WHERE key = %s AND {live} FOR UPDATE"
        self._replace_value = f"UPDATE {t} SET value = %s, kind = %s WHERE key = %s"
        self._clear = f"DELETE FROM {t} WHERE cache = %s"
        self._count = f"SELECT count(*) FROM {t} WHERE cache = %s"
        self._cull = (
            f"DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE cache = %s "
            f"ORDER BY (expires IS NOT NULL AND expires <= %s) DESC, accessed LIMIT %s)"
        )
        self._cull_all = f"DELETE FROM {t} WHERE cache = %s AND key <> %s"

    def setup(self) -> None:
        """Nothing to create: the table's migration made it UNLOGGED on the server."""

    def close(self) -> None:
        """Nothing held beside the alias's connection."""

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with transaction.atomic(using=self.alias), connections[self.alias].cursor() as cursor:
            yield cursor

    def _cursor(self) -> Any:
        return connections[self.alias].cursor()

    def _lock(self, cursor: Any) -> None:
        """The cache's lock, till the end of the transaction: taken before any row of it."""
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [self.lock_id])

    def _bounded(self, cursor: Any, inserted_key: str, now: float) -> None:
        """Inside the transaction of an insert, under ``_lock``: evict LRU entries past the bound."""
        cursor.execute(self._count, [self.cache])
        if cursor.fetchone()[0] <= self.max_entries:
            return
        if self.cull < 0:
            cursor.execute(self._cull_all, [self.cache, inserted_key])
        else:
            cursor.execute(self._cull, [self.cache, now, self.cull])

    def get(self, key: str, now: float) -> tuple[bytes, int] | None:
        with self._cursor() as cursor:
            cursor.execute(self._get, [key])
            row = cursor.fetchone()
            if row is None:
                return None
            value, kind, expires = row
            if expires is not None and expires <= now:
                cursor.execute(self._drop_expired, [key, now])
                return None
            return bytes(value), kind

    def get_many(self, keys: list[str], now: float) -> dict[str, tuple[bytes, int]]:
        found: dict[str, tuple[bytes, int]] = {}
        if not keys:
            return found
        with self._cursor() as cursor:
            cursor.execute(self._get_many, [keys])
            expired = []
            for key, value, kind, expires in cursor.fetchall():
                if expires is None or expires > now:
                    found[key] = (bytes(value), kind)
                else:
                    expired.append(key)
            if expired:  # as get does: an expired entry found is deleted
                cursor.execute(self._drop_expired_many, [expired, now])
        return found

    def has_key(self, key: str, now: float) -> bool:
        with self._cursor() as cursor:
            cursor.execute(self._has, [key, now])
            return cursor.fetchone() is not None

    def read(self, key: str, now: float) -> tuple[bytes, int, float | None] | None:
        with self._cursor() as cursor:
            cursor.execute(self._read, [key, now])
            row = cursor.fetchone()
        return None if row is None else (bytes(row[0]), row[1], row[2])

    def set(self, key: str, value: bytes, kind: int, expires: float | None) -> None:
        self.set_many([(key, value, kind)], expires)

    def set_many(self, items: Iterable[tuple[str, bytes, int]], expires: float | None) -> None:
        now = time.time()
        with self.transaction() as cursor:
            self._lock(cursor)
            for key, value, kind in items:
                cursor.execute(self._set, [key, self.cache, value, kind, expires, self.cache])
                self._bounded(cursor, key, now)

    def add(self, key: str, value: bytes, kind: int, expires: float | None, now: float) -> bool:
        with self.transaction() as cursor:
            self._lock(cursor)
            cursor.execute(self._add, [key, self.cache, value, kind, expires, self.cache, now])
            added = cursor.rowcount > 0
            if added:
                self._bounded(cursor, key, now)
        return added

    def replace_value(self, key: str, value: bytes, kind: int) -> None:
        with self._cursor() as cursor:
            cursor.execute(self._replace_value, [value, kind, key])

    def touch(self, key: str, expires: float | None, now: float) -> bool:
        with self._cursor() as cursor:
            cursor.execute(self._touch, [expires, self.cache, key, now])
            return cursor.rowcount > 0

    def delete(self, key: str) -> bool:
        with self._cursor() as cursor:
            cursor.execute(self._delete, [key])
            return cursor.rowcount > 0

    def delete_many(self, keys: list[str]) -> None:
        if keys:
            with self._cursor() as cursor:
                cursor.execute(self._delete_many, [keys])

    def clear(self) -> None:
        with self._cursor() as cursor:
            cursor.execute(self._clear, [self.cache])

    def written(self) -> None:
        """The cluster's capture triggers record the change; its flush journals it."""

    def count(self) -> int:
        with self._cursor() as cursor:
            cursor.execute(self._count, [self.cache])
            return int(cursor.fetchone()[0])

