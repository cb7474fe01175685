"""The identity map of in-memory models: one instance per row, per thread, coherent with every write.

A model opts in with ``memdb_identity_map = True`` (or the ``IdentityMapped``
mixin). Its rows loaded through the ORM are kept, by primary key, in a map of
the loading thread (or of the process, ``memdb_identity_shared = True``), one
map per alias; loading the same row again returns the same instance.

Coherence: every change of a mapped row, whatever wrote it, evicts the row
(see identity_triggers.py for SQLite, engines of cluster mode for servers).
The writing thread's map is evicted at once; the maps of other threads when
the change is committed (they never see an uncommitted change); a rollback
evicts what the transaction changed from the writer's map. An instance read
by a statement that started before another thread's eviction is not mapped
(``epoch``), so a late insertion never brings back a stale row.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Iterable, MutableMapping
from typing import Any

from django.db import models

from .signals import post_flush, pre_flush

# Bumped whenever rows are evicted for another thread or process: a row read
# by a statement that began before it is not mapped.
_counter = itertools.count(1)
_epoch = 0
_statement = threading.local()

# Per-thread maps: {(alias, model): {pk: instance}}; every thread's, to evict them.
_local = threading.local()
_every_thread: weakref.WeakSet[ThreadMaps] = weakref.WeakSet()
_shared_maps: dict[tuple[str, type[models.Model]], MutableMapping[Any, Any]] = {}
_registry_lock = threading.Lock()

# {alias: {(model, pk), ...}}: what this thread changed in its open transaction.
_pending = threading.local()


class ThreadMaps(dict):  # type: ignore[type-arg]
    """The maps of one thread: a dict that can be weakly referenced, equal only to itself."""

    __hash__ = object.__hash__  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return self is other


class BoundedMap(dict):  # type: ignore[type-arg]
    """A strong map that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        if len(self) > self.limit:
            try:
                del self[next(iter(self))]
            except (KeyError, StopIteration, RuntimeError):
                pass  # another thread evicted it meanwhile


def is_mapped(model: type[models.Model]) -> bool:
    return bool(getattr(model, "memdb_identity_map", False))


def _new_map(model: type[models.Model]) -> MutableMapping[Any, Any]:
    if getattr(model, "memdb_identity_strong", False):
        return BoundedMap(int(getattr(model, "memdb_identity_limit", 100_000)))
    return weakref.WeakValueDictionary()


def _own_thread_maps() -> ThreadMaps:
    try:
        return _local.maps
    except AttributeError:
        maps = _local.maps = ThreadMaps()
        with _registry_lock:
            _every_thread.add(maps)
        return maps


def map_for(alias: str, model: type[models.Model]) -> MutableMapping[Any, Any]:
    """The map that holds ``model``'s rows of ``alias`` for the calling thread."""
    key = (alias, model)
    if getattr(model, "memdb_identity_shared", False):
        found = _shared_maps.get(key)
        if found is None:
            with _registry_lock:
                found = _shared_maps.setdefault(key, _new_map(model))
        return found
    maps = _own_thread_maps()
    found = maps.get(key)
    if found is None:
        found = maps[key] = _new_map(model)
    return found


def lookup(alias: str, model: type[models.Model], pk: Any, validate: bool = True) -> Any:
    """The mapped instance of ``pk``, or None; first, host mode checks other processes' commits."""
    if validate and alias in _validators:
        _validators[alias]()
    if getattr(model, "memdb_identity_shared", False):
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


# Eviction


def _all_maps(alias: str, model: type[models.Model]) -> list[MutableMapping[Any, Any]]:
    key = (alias, model)
    with _registry_lock:
        found = [maps[key] for maps in _every_thread if key in maps]
    shared = _shared_maps.get(key)
    if shared is not None:
        found.append(shared)
    return found


def _own_maps(alias: str, model: type[models.Model]) -> list[MutableMapping[Any, Any]]:
    key = (alias, model)
    found = []
    maps = getattr(_local, "maps", None)
    if maps is not None and key in maps:
        found.append(maps[key])
    shared = _shared_maps.get(key)
    if shared is not None:
        found.append(shared)
    return found


def _evict(maps: Iterable[MutableMapping[Any, Any]], pk: Any) -> None:
    for found in maps:
        found.pop(pk, None)


def changed(alias: str, model: type[models.Model], pk: Any, in_transaction: bool) -> None:
    """A write of the calling thread changed row ``pk`` (before its statement returns)."""
    global _epoch
    if in_transaction:
        _evict(_own_maps(alias, model), pk)
        pending = _pending.__dict__.setdefault(alias, set())
        pending.add((model, pk))
    else:
        _epoch = next(_counter)
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
    """What the transaction (or savepoint) changed leaves the writer's map.

    After a savepoint rollback the whole transaction's changes are evicted
    (more than needed, never less) and stay pending until it ends.
    """
    pending = _pending.__dict__.get(alias) if savepoint else _pending.__dict__.pop(alias, None)
    for model, pk in pending or ():
        _evict(_own_maps(alias, model), pk)


# Flushing


def _keys(using: str | None, model: type[models.Model] | None) -> set[tuple[str, type[models.Model]]]:
    with _registry_lock:
        keys = {key for maps in _every_thread for key in list(maps)}
    keys.update(_shared_maps)
    return {
        key for key in keys
        if (using is None or key[0] == using) and (model is None or key[1] is model)
    }


def clear(using: str | None = None, model: type[models.Model] | None = None, pk: Any = None) -> None:
    """Evict from every thread's map, without signals (see ``flush``)."""
    global _epoch
    _epoch = next(_counter)
    for alias, mapped in _keys(using, None):
        if model is not None and not issubclass(mapped, model._meta.concrete_model):
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
    instance = target if isinstance(target, models.Model) else None
    model = type(instance) if instance is not None else target
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
