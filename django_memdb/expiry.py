"""Rows that expire: the ``Expiry`` declaration, the purge, and when it runs.

Expired rows are deleted (never filtered), so every reader agrees on what a
table holds and a persistent table journals the deletion like any other:
a restart does not bring them back. A purge runs

- before an ORM read or write of the model is routed, when the last purge
  of that model in this process is ``MEMDB_EXPIRY_INTERVAL`` or more ago
  (lazy expiry, as Redis does on access), and
- every ``MEMDB_EXPIRY_INTERVAL`` in a thread of each process (active expiry),

in batches that are each their own short transaction, so that other
requests wait for one batch at most, never for the whole purge.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connections, models, router, transaction
from django.utils import timezone

from . import registry
from .conf import conf
from .exceptions import MemDBError
from .transactions import user_in_atomic

logger = logging.getLogger("django_memdb")

# Rows deleted per transaction: short enough that a thread waiting for the
# database waits milliseconds (see benchmarks/expiry.py).
BATCH = 500


class Expiry:
    """When the rows of an in-memory model expire; ``memdb_expiry = Expiry(...)`` on the model.

    ``Expiry(ttl=3600, field="created")``: a row expires ``ttl`` seconds after
    the time in its ``created`` field. ``Expiry(field="expires_at")``: a row
    expires at the time in its ``expires_at`` field (NULL: never).
    """

    def __init__(self, ttl: float | datetime.timedelta | None = None, field: str | None = None) -> None:
        self.ttl = ttl
        self.field = field

    @property
    def seconds(self) -> float | None:
        if isinstance(self.ttl, datetime.timedelta):
            return self.ttl.total_seconds()
        return None if self.ttl is None else float(self.ttl)

    def cutoff(self, now: datetime.datetime) -> datetime.datetime:
        """Rows whose field holds this time or earlier have expired."""
        seconds = self.seconds
        return now if seconds is None else now - datetime.timedelta(seconds=seconds)

    def __repr__(self) -> str:
        return f"Expiry(ttl={self.ttl!r}, field={self.field!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expiry) and (self.ttl, self.field) == (other.ttl, other.field)

    def __hash__(self) -> int:
        return hash((self.ttl, self.field))


def declared(model: Any) -> Expiry | None:
    """The Expiry of an in-memory model, None for any other model."""
    spec = getattr(model, "memdb_expiry", None)
    if not isinstance(spec, Expiry) or not registry.is_in_memory(model):
        return None
    return spec


def expiring_models() -> list[type[models.Model]]:
    return [model for model in registry.in_memory_models() if declared(model) is not None]


# The time source: tests replace it to move time forward without waiting.
clock: Callable[[], datetime.datetime] = timezone.now


def expired(model: type[models.Model], now: datetime.datetime | None = None) -> models.QuerySet[Any]:
    """The rows of ``model`` that have expired at ``now`` (default: the clock)."""
    spec = declared(model)
    assert spec is not None and spec.field is not None, f"{model._meta.label} declares no memdb_expiry"
    cutoff = spec.cutoff(clock() if now is None else now)
    return model._base_manager.using(conf.MEMDB_NAME).filter(**{f"{spec.field}__lte": cutoff})


def purge(model: type[models.Model], now: datetime.datetime | None = None, batch: int = BATCH) -> int:
    """Delete the expired rows of ``model`` in batches; how many were deleted.

    Each batch is a ``QuerySet.delete()`` in a transaction of its own, so
    ``pre_delete``/``post_delete`` are sent and ``on_delete`` is honoured as
    for any delete, and the capture triggers journal it.
    """
    now = clock() if now is None else now
    alias = conf.MEMDB_NAME
    manager = model._base_manager.using(alias)
    total = 0
    while True:
        with transaction.atomic(using=alias):
            keys = list(expired(model, now).values_list("pk", flat=True)[:batch])
            if keys:
                manager.filter(pk__in=keys).delete()
        total += len(keys)
        if len(keys) < batch:
            return total


# When the last purge of each model ran in this process (clock time).
_last_purge: dict[type[models.Model], datetime.datetime] = {}
_local = threading.local()


def due(model: type[models.Model], now: datetime.datetime) -> bool:
    last = _last_purge.get(model)
    if last is None:
        return True
    elapsed = (now - last).total_seconds()
    return elapsed < 0 or elapsed >= conf.MEMDB_EXPIRY_INTERVAL  # a clock set back: purge


def before_use(model: type[models.Model]) -> None:
    """Purge ``model`` if it expires and its last purge is too old; from the router.

    Inside a transaction of the project the purge joins it (as a savepoint)
    and is not remembered: a rollback would bring the rows back.
    """
    spec = declared(model)
    if spec is None or getattr(_local, "purging", False):
        return
    now = clock()
    if not due(model, now):
        return
    wrapper = connections[conf.MEMDB_NAME]
    if getattr(getattr(wrapper, "memdb_database", None), "bootstrapping", None) == threading.get_ident():
        return  # a migration or the restore of this thread: the tables are not ready
    _local.purging = True
    try:
        in_transaction = user_in_atomic(wrapper)
        purge(model, now)
        if not in_transaction:
            _last_purge[model] = now
    except DatabaseError as exc:
        # Never fail the read or write that asked: the next one tries again.
        logger.warning("django_memdb: could not purge the expired rows of %s: %s", model._meta.label, exc)
    finally:
        _local.purging = False


def forget_purges() -> None:
    """Purge every expiring model at its next use (a new database, or a test)."""
    _last_purge.clear()


# The purger thread of this process (active expiry).

_purger: threading.Thread | None = None
_purger_lock = threading.Lock()
_stop = threading.Event()


def _purge_loop() -> None:
    # The last failure logged per model: a failure that repeats every interval
    # (a database down for a while) is logged once, not every second.
    failing: dict[type[models.Model], str] = {}
    while not _stop.wait(conf.MEMDB_EXPIRY_INTERVAL):
        for model in expiring_models():
            try:
                # Routed as a write: a blocked table or a refused lease is skipped.
                router.db_for_write(model)
            except MemDBError as exc:
                logger.debug("django_memdb: purge of %s skipped: %s", model._meta.label, exc)
            except Exception as exc:  # the thread must outlive any failure; reads purge too
                level = logging.DEBUG if failing.get(model) == str(exc) else logging.WARNING
                failing[model] = str(exc)
                logger.log(level, "django_memdb: purge of %s failed: %s", model._meta.label, exc)
            else:
                failing.pop(model, None)
        try:
            connections.close_all()
        except Exception:  # a dropped connection: gone all the same
            pass


def start_purger() -> None:
    """Start the purger thread of this process once, if any model expires."""
    global _purger
    if _purger is not None and _purger.is_alive():
        return
    with _purger_lock:
        if (_purger is not None and _purger.is_alive()) or not expiring_models():
            return
        _purger = threading.Thread(target=_purge_loop, name="django_memdb-expiry", daemon=True)
        _purger.start()


def _after_fork_in_child() -> None:
    global _purger, _purger_lock
    _purger = None  # the parent's thread does not exist here
    _purger_lock = threading.Lock()
    _last_purge.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
