"""``django_memdb.cache.MemDBCache``: a Django cache backend on the in-memory database.

Entries are rows of ``CacheEntry`` (or ``PersistentCacheEntry`` with
``OPTIONS["PERSISTENT"]``), so they are shared as the in-memory tables are:
by the threads of a process (``process`` mode), by every process of a host
(``host``), by every host (``cluster``). A persistent cache is journaled and
restored like any persistent table, under ``MEMDB_DURABILITY``.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.apps import apps
from django.core.cache.backends.base import DEFAULT_TIMEOUT, MEMCACHE_MAX_KEY_LENGTH, BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.backends.signals import connection_created

from ..backend import hooks, shared
from ..conf import conf
from . import codec
from .server_store import ServerStore, require_postgresql
from .sqlite_store import SQLiteStore

SEPARATOR = "\x1f"
APP_LABEL = "memdb_cache"


class _Epoch:
    """Bumped when a connection of the alias is opened or the process forked: cached stores are then
    checked against the database the alias uses now (a test database, a forked child's own)."""

    value = 0


def _bump(**kwargs: Any) -> None:
    connection = kwargs.get("connection")
    if connection is None or connection.alias == conf.MEMDB_NAME:
        _Epoch.value += 1


connection_created.connect(_bump, dispatch_uid="django_memdb.cache")
shared.on_fork(_bump)

_stores: dict[tuple[str, str, str], Any] = {}
_stores_lock = threading.Lock()


def _forget_stores() -> None:
    for store in _stores.values():
        store.close()  # the child's copies of the parent's descriptors (one thread here)
    _stores.clear()


shared.on_fork(_forget_stores)


class MemDBCache(BaseCache):
    """Django cache backend whose entries live in django-memdb's in-memory database.

    ``LOCATION`` names the cache: backends with the same LOCATION share entries.
    ``OPTIONS``: ``MAX_ENTRIES`` (default 300), ``CULL_FREQUENCY`` (default 3;
    when an insert takes the cache past MAX_ENTRIES, the least recently used
    ``MAX_ENTRIES // CULL_FREQUENCY`` entries are evicted, expired ones first;
    0 empties the cache), ``PERSISTENT`` (default False).
    """

    pickle_protocol = pickle.HIGHEST_PROTOCOL

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = params.get("OPTIONS", {})
        self.location = location or "default"
        if SEPARATOR in self.location or len(self.location) > 100:
            raise ImproperlyConfigured(
                f"MemDBCache: LOCATION {self.location!r} must be at most 100 characters, "
                f"without the character \\x1f; choose another name for the cache."
            )
        self.persistent = bool(options.get("PERSISTENT", False))
        self._model: Any = None
        if self._max_entries < 1:
            raise ImproperlyConfigured(f"MemDBCache {self.location!r}: MAX_ENTRIES must be at least 1.")
        if self._cull_frequency < 0:
            raise ImproperlyConfigured(f"MemDBCache {self.location!r}: CULL_FREQUENCY must be 0 or more.")
        self._cull = -1 if self._cull_frequency == 0 else max(1, self._max_entries // self._cull_frequency)
        self._prefix = self.location + SEPARATOR
        self._store: Any = None
        self._epoch = -1
        # Keys made and validated already, with the key of their row: validation scans every
        # character, a lookup does not. Only keys BaseCache.validate_key cannot warn about.
        self._made: dict[str, str] = {}
        self._remember_keys = type(self).validate_key is BaseCache.validate_key
        self._made_bound = min(max(1000, self._max_entries), 100_000)

    # Where the entries are

    @property
    def model(self) -> Any:
        """The table of the entries (the app's models are looked up once the registry is ready)."""
        if self._model is None:
            if hooks.installed().opening().tables_on_server:
                # First: on MariaDB the app is rightly left out, and "add it to INSTALLED_APPS" would mislead.
                require_postgresql(conf.MEMDB_NAME, self.location)
            name = "PersistentCacheEntry" if self.persistent else "CacheEntry"
            try:
                self._model = apps.get_model(APP_LABEL, name)
            except LookupError:
                raise ImproperlyConfigured(
                    f"MemDBCache {self.location!r} keeps its entries in the models of the app "
                    f"'django_memdb.cache': add it to INSTALLED_APPS (after 'django_memdb')."
                ) from None
        return self._model

    def _resolve(self) -> Any:
        """The store of this cache in the database the alias uses now (set up on first use)."""
        wrapper: Any = connections[conf.MEMDB_NAME]  # the engine's, or the cluster's
        table = self.model._meta.db_table
        make: Callable[[], Any]
        if hooks.installed().opening().tables_on_server:
            key = (str(wrapper.settings_dict["NAME"]), table, self.location)
            make = lambda: ServerStore(wrapper.alias, table, self.location, self._max_entries, self._cull)  # noqa: E731
            current = None
        else:
            wrapper.ensure_connection()
            database = wrapper.memdb_database
            key = (database.name, table, self.location)
            make = lambda: SQLiteStore(  # noqa: E731
                database, table, self.location, self._max_entries, self._cull, hold=not self.persistent
            )
            current = database
        with _stores_lock:
            store = _stores.get(key)
            if store is None or (current is not None and store.database is not current):
                store = make()
                store.setup()
                _stores[key] = store
        return store

    def _entries(self, write: bool = False) -> Any:
        epoch = _Epoch.value
        if self.persistent:
            # As for any persistent table: refused while its stored data cannot be
            # restored, and a write checks that this process may store it (lease).
            # A read of a restored database without failures needs neither (the
            # router's checks cost more than the read).
            database = getattr(self._store, "database", None) if self._epoch == epoch else None
            if write or database is None or not database.ready or database.failed:
                (router.db_for_write if write else router.db_for_read)(self.model)
        if self._epoch != epoch:
            self._store = self._resolve()
            self._epoch = epoch
        store = self._store
        if store.provisional:
            store.ensure()
        return store

    def _written(self, store: Any) -> None:
        """Journal what a write to a persistent cache changed, as a statement of the alias would."""
        if self.persistent:
            store.written()

    def _key(self, key: Any, version: int | None) -> str:
        made = self.make_key(key, version=version)
        full = self._made.get(made)
        if full is None:
            self.validate_key(made)  # as make_and_validate_key: raises or warns
            full = self._prefix + made
            if (
                self._remember_keys and type(made) is str and len(made) <= MEMCACHE_MAX_KEY_LENGTH
                and made.isprintable() and " " not in made  # no character below 33 nor 127
            ):
                if len(self._made) >= self._made_bound:
                    self._made.clear()
                self._made[made] = full
        return full

    def _encode(self, value: Any) -> tuple[bytes, int]:
        return codec.encode(value, self.pickle_protocol)

    # BaseCache

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        found = self._entries().get(self._key(key, version), time.time())
        if found is None:
            return default
        return codec.decode(*found)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        full = self._key(key, version)
        data, kind = codec.encode(value, self.pickle_protocol)
        store = self._entries(write=True)
        store.set(full, data, kind, self.get_backend_timeout(timeout))
        if self.persistent:
            store.written()

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        full = self._key(key, version)
        data, kind = self._encode(value)
        store = self._entries(write=True)
        added = store.add(full, data, kind, self.get_backend_timeout(timeout), time.time())
        self._written(store)
        return bool(added)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        full = self._key(key, version)
        store = self._entries(write=True)
        touched = store.touch(full, self.get_backend_timeout(timeout), time.time())
        self._written(store)
        return bool(touched)

    def delete(self, key: Any, version: int | None = None) -> bool:
        full = self._key(key, version)
        store = self._entries(write=True)
        deleted = store.delete(full)
        self._written(store)
        return bool(deleted)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        full = {self._key(key, version): key for key in keys}
        found = self._entries().get_many(list(full), time.time())
        return {full[k]: codec.decode(*entry) for k, entry in found.items()}

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        items = [(self._key(key, version), *self._encode(value)) for key, value in data.items()]
        store = self._entries(write=True)
        store.set_many(items, self.get_backend_timeout(timeout))
        self._written(store)
        return []

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        full = [self._key(key, version) for key in keys]
        store = self._entries(write=True)
        store.delete_many(full)
        self._written(store)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return bool(self._entries().has_key(self._key(key, version), time.time()))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Atomic, also between the processes sharing the cache; keeps the entry's expiry."""
        full = self._key(key, version)
        store = self._entries(write=True)
        with store.transaction():
            entry = store.read(full, time.time())
            if entry is None:
                raise ValueError(f"Key '{key}' not found")
            value = codec.decode(entry[0], entry[1]) + delta
            store.replace_value(full, *self._encode(value))
        self._written(store)
        return value

    def clear(self) -> None:
        store = self._entries(write=True)
        store.clear()
        self._written(store)

    def close(self, **kwargs: Any) -> None:
        """Nothing to close: the in-memory database lives as long as the process."""

    def __len__(self) -> int:
        """Entries stored now, expired ones included until they are evicted."""
        return int(self._entries().count())
