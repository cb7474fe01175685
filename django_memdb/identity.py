"""The identity map of in-memory models: one instance per row, per thread, coherent with every write.

A model opts in with ``memdb_identity_map = True`` (or the ``IdentityMapped``
mixin). Its rows loaded through the ORM are kept, by primary key, in a map of
the loading thread (or of the process, ``memdb_identity_shared = True``), one
map per alias; loading the same row again returns the same instance.

Coherence: every change of a mapped row, whatever wrote it, evicts the row
(see identity_triggers.py for SQLite, engines of cluster mode for servers).
The writing thread's map is evicted at once; the maps of other threads when
the change is committed (they never see an uncommitted change); a rollback
empties the writer's map of that alias. An instance read
by a statement that started before another thread's eviction is not mapped
(``epoch``), so a late insertion never brings back a stale row.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import models

from .signals import post_flush, pre_flush

# Bumped whenever rows are evicted for another thread or process: a row read
# by a statement that began before it is not mapped.
_counter = itertools.count(1)
_epoch = 0
_statement = threading.local()

Key = tuple[str, type[models.Model]]

# This thread's maps in ``_local.maps``: {(alias, model): map}. Every map of a key,
# whatever its thread, in ``_holders`` (weakly: a thread's maps go with it).
_local = threading.local()
_holders: dict[Key, list[weakref.ref[Any]]] = {}
_shared_maps: dict[Key, Any] = {}
_shared_models: set[type[models.Model]] = set()
_registry_lock = threading.Lock()

# {alias: {(model, pk), ...}}: what this thread changed in its open transaction.
_pending = threading.local()


class WeakMap(dict):  # type: ignore[type-arg]
    """pk -> instance, holding weak references: an entry goes when nothing else holds its instance."""

    def __init__(self) -> None:
        super().__init__()
        this = weakref.ref(self)

        def remove(ref: Any, this: Any = this) -> None:
            found: Any = this()
            key: Any = ref.key
            if found is not None and dict.get(found, key) is ref:
                dict.pop(found, key, None)

        self._remove = remove

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, weakref.KeyedRef(value, self._remove, key))

    def get(self, key: Any, default: Any = None) -> Any:
        ref = dict.get(self, key)
        if ref is None:
            return default
        instance = ref()
        return default if instance is None else instance


class BoundedMap(dict):  # type: ignore[type-arg]
    """pk -> instance, holding strong references, forgetting the oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, value)
        if len(self) > self.limit:
            try:
                del self[next(iter(self))]
            except (KeyError, StopIteration, RuntimeError):
                pass  # another thread evicted it meanwhile


def is_mapped(model: type[models.Model]) -> bool:
    return bool(getattr(model, "memdb_identity_map", False))


def _new_map(key: Key) -> Any:
    model = key[1]
    if getattr(model, "memdb_identity_strong", False):
        found: Any = BoundedMap(int(getattr(model, "memdb_identity_limit", 100_000)))
    else:
        found = WeakMap()
    with _registry_lock:
        refs = [ref for ref in _holders.get(key, ()) if ref() is not None]
        refs.append(weakref.ref(found))
        _holders[key] = refs
    return found


def map_for(alias: str, model: type[models.Model], shared: bool | None = None) -> Any:
    """The map that holds ``model``'s rows of ``alias`` for the calling thread."""
    key = (alias, model)
    if shared is None:
        shared = bool(getattr(model, "memdb_identity_shared", False))
    if shared:
        found = _shared_maps.get(key)
        if found is None:
            _shared_models.add(model)
            found = _shared_maps.setdefault(key, _new_map(key))
        return found
    try:
        maps = _local.maps
    except AttributeError:
        maps = _local.maps = {}
    found = maps.get(key)
    if found is None:
        found = maps[key] = _new_map(key)
    return found


def lookup(alias: str, model: type[models.Model], pk: Any, validate: bool = True) -> Any:
    """The mapped instance of ``pk``, or None; first, host mode checks other processes' commits."""
    if validate and _validators and alias in _validators:
        _validators[alias]()
    if model in _shared_models:
        found = _shared_maps.get((alias, model))
    else:
        try:
            found = _local.maps.get((alias, model))
        except AttributeError:
            return None
    return None if found is None else found.get(pk)


# Feeding the map


def statement_started(alias: str) -> None:
    """Called before each statement on ``alias``: rows it reads are as new as this epoch."""
    validator = _validators.get(alias)
    if validator is not None:
        validator()
    _statement.epoch = _epoch


def may_map(blocked: bool = False) -> bool:
    """Whether a row the calling thread just read may enter the map.

    ``blocked``: a process-wide map and a transaction that may still take
    back what it read.
    """
    return not blocked and getattr(_statement, "epoch", None) == _epoch


def pinned(rows: Iterator[Any]) -> Iterator[Any]:
    """Rows of a lazy ``QuerySet.iterator()``: each is as new as the statement that read them.

    Statements run between two rows (in the loop's body) must not make a row
    read before another thread's commit look newer than it.
    """
    read: int | None = None
    while True:
        saved = getattr(_statement, "epoch", None)
        _statement.epoch = _epoch if read is None else read
        try:
            row = next(rows)
        except StopIteration:
            return
        finally:
            if read is None:
                read = _statement.epoch
            _statement.epoch = saved
        yield row


# Eviction


def _all_maps(alias: str, model: type[models.Model]) -> list[Any]:
    return [found for ref in _holders.get((alias, model), ()) if (found := ref()) is not None]


def _own_maps(alias: str, model: type[models.Model]) -> list[Any]:
    key = (alias, model)
    found = []
    maps = getattr(_local, "maps", None)
    if maps is not None and key in maps:
        found.append(maps[key])
    shared = _shared_maps.get(key)
    if shared is not None:
        found.append(shared)
    return found


def _evict(maps: Iterable[Any], pk: Any) -> None:
    for found in maps:
        found.pop(pk, None)


def changed(alias: str, model: type[models.Model], pk: Any, in_transaction: bool) -> None:
    """A write of the calling thread changed row ``pk`` (before its statement returns)."""
    global _epoch
    if in_transaction:
        pending = _pending.__dict__.get(alias)
        if pending is None:
            pending = _pending.__dict__[alias] = set()
        pending.add((model, pk))
        if (alias, model) in _holders:
            _evict(_own_maps(alias, model), pk)
    else:
        _epoch = next(_counter)
        if (alias, model) in _holders:
            _evict(_all_maps(alias, model), pk)


def forget(alias: str, model: type[models.Model], pk: Any) -> None:
    """Evict one row from the calling thread's map (and the process-wide one)."""
    _evict(_own_maps(alias, model), pk)


def committed(alias: str) -> None:
    """The calling thread's transaction on ``alias`` committed: the other threads see it now."""
    global _epoch
    pending = _pending.__dict__.pop(alias, None)
    if pending:
        _epoch = next(_counter)
        for model, pk in pending:
            _evict(_all_maps(alias, model), pk)


def rolled_back(alias: str, savepoint: bool = False) -> None:
    """The calling thread's map of ``alias`` forgets what it read in the transaction.

    All of it: rows the transaction inserted fire no trigger (see
    identity_sqlite.py), and the others are read again. After a savepoint
    rollback the transaction's changes stay pending until it ends.
    """
    if not savepoint:
        _pending.__dict__.pop(alias, None)
    maps = getattr(_local, "maps", None)
    for key, found in list((maps or {}).items()):
        if key[0] == alias:
            found.clear()


# Flushing


def _keys(using: str | None, model: type[models.Model] | None) -> set[Key]:
    with _registry_lock:
        keys = set(_holders)
    return {
        key for key in keys
        if (using is None or key[0] == using) and (model is None or key[1] is model)
    }


def clear(using: str | None = None, model: type[models.Model] | None = None, pk: Any = None) -> None:
    """Evict from every thread's map, without signals (see ``flush``)."""
    global _epoch
    _epoch = next(_counter)
    for alias, mapped in _keys(using, None):
        if model is not None and not issubclass(mapped, model._meta.concrete_model or model):
            continue
        if pk is not None:
            _evict(_all_maps(alias, mapped), pk)
        else:
            for found in _all_maps(alias, mapped):
                found.clear()


def flush(
    target: type[models.Model] | models.Model | None = None, *, using: str | None = None
) -> None:
    """Empty the identity map: all of it, of one alias, of one model, or one instance's row.

    Every thread's map and the process-wide maps; ``pre_flush`` and
    ``post_flush`` are sent around it (sender: the model, or
    ``models.Model`` for all) with ``alias`` (None: every alias) and
    ``instance``.
    """
    instance: models.Model | None
    model: type[models.Model] | None
    if isinstance(target, models.Model):
        instance, model = target, type(target)
    else:
        instance, model = None, target
    if instance is not None and using is None:
        using = instance._state.db
    sender = model if model is not None else models.Model
    pre_flush.send(sender=sender, alias=using, instance=instance)
    if instance is None or instance.pk is not None:
        clear(using, model, None if instance is None else instance.pk)
    post_flush.send(sender=sender, alias=using, instance=instance)


def forget_thread() -> None:
    """Drop the calling thread's maps (its instances are no longer kept by it)."""
    maps = getattr(_local, "maps", None)
    if maps is not None:
        maps.clear()


# Validation against other processes (host mode): see identity_host.py

_validators: dict[str, Any] = {}


def set_validator(alias: str, validator: Any) -> None:
    """Run ``validator()`` before each map lookup of ``alias`` (None removes it)."""
    if validator is None:
        _validators.pop(alias, None)
    else:
        _validators[alias] = validator


def validator(alias: str) -> Any:
    return _validators.get(alias)
