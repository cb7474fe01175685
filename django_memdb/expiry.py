"""Rows that expire: the ``Expiry`` declaration, the purge, and when it runs.

Expired rows are deleted (never filtered), so every reader agrees on what a
table holds and a persistent table journals the deletion like any other:
a restart does not bring them back. A purge runs

- before every ORM read or write of the model (routed, or answered by the
  identity map) that finds an expired row by a lookup in the field's index
  (on SQLite, not repeated while the database did not change and the
  earliest expiry it found is ahead), so that no ORM read returns a row that
  had expired when it began,
- every ``MEMDB_EXPIRY_INTERVAL`` in a thread of each process (active
  expiry), so that tables nobody reads do not keep their expired rows,

in slices bounded in time (``pacing``), each its own short transaction,
with a pause between them: other requests wait for one slice at most,
never for the whole purge.
"""

from __future__ import annotations

import datetime
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connections, models, router, transaction
from django.utils import timezone

from . import pacing, registry
from .conf import conf
from .exceptions import MemDBError

logger = logging.getLogger("django_memdb")


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


def _in_transaction(wrapper: Any) -> bool:
    """Inside any transaction of this thread, Django's TestCase's too: it holds the database's lock."""
    return wrapper.connection is not None and (wrapper.in_atomic_block or not wrapper.get_autocommit())


def purge(model: type[models.Model], now: datetime.datetime | None = None, batch: int | None = None) -> int:
    """Delete the expired rows of ``model`` in slices; how many were deleted.

    Each slice is a ``QuerySet.delete()`` in a transaction of its own, so
    ``pre_delete``/``post_delete`` are sent and ``on_delete`` is honoured as
    for any delete, and the capture triggers journal it. A slice takes as
    many rows as fit in ``pacing.SLICE_SECONDS`` by the time the previous
    ones took (``batch``: that many rows each, always), and the purge pauses
    between slices so that the threads waiting for the database go first.
    Inside a transaction (Django TestCase's too) the slices join it: the lock is held
    until it ends whatever the purge does, so there is no pause.
    """
    now = clock() if now is None else now
    alias = conf.MEMDB_NAME
    manager = model._base_manager.using(alias)
    pacer = pacing.Pacer()
    if batch is not None:
        pacer.size = pacer.largest = batch
    in_transaction = _in_transaction(connections[alias])
    total = 0
    while True:
        size = pacer.size
        began = time.perf_counter()
        with transaction.atomic(using=alias):
            keys = list(expired(model, now).values_list("pk", flat=True)[:size])
            if keys:
                manager.filter(pk__in=keys).delete()
            work = time.perf_counter() - began
        held = time.perf_counter() - began  # with the commit (a persistent model's journal)
        total += len(keys)
        if len(keys) < size:
            return total
        pacer.measured(len(keys), work, held)
        if not in_transaction:
            pacing.pause_after(held)


# Per model and database vendor: the SQL of the lookups below.
_probes: dict[tuple[type[models.Model], str, str], str] = {}


def _compiled(model: type[models.Model], wrapper: Any, kind: str, queryset: models.QuerySet[Any]) -> str:
    # Compiled once per model (a queryset each time would cost more than the lookup).
    key = (model, wrapper.vendor, kind)
    sql = _probes.get(key)
    if sql is None:
        sql, params = queryset.query.get_compiler(using=wrapper.alias).as_sql()
        assert len(params) == (1 if kind == "expired" else 0), params
        _probes[key] = sql
    return sql


def any_expired(model: type[models.Model], now: datetime.datetime) -> bool:
    """Whether a row of ``model`` has expired at ``now``: one lookup in the field's index."""
    spec = declared(model)
    assert spec is not None and spec.field is not None
    wrapper = connections[conf.MEMDB_NAME]
    sql = _compiled(model, wrapper, "expired", expired(model, now).values_list("pk", flat=True)[:1])
    with wrapper.cursor() as cursor:
        cursor.execute(sql, [wrapper.ops.adapt_datetimefield_value(spec.cutoff(now))])
        return cursor.fetchone() is not None


def _earliest(model: type[models.Model], wrapper: Any, field: str) -> datetime.datetime | None:
    """The smallest value of the field in the table (SQLite): rows expire in its order."""
    manager = model._base_manager.using(wrapper.alias)
    queryset = manager.filter(**{f"{field}__isnull": False}).order_by(field).values_list(field, flat=True)[:1]
    with wrapper.cursor() as cursor:
        cursor.execute(_compiled(model, wrapper, "earliest", queryset))
        row = cursor.fetchone()
    if row is None:
        return None
    value: datetime.datetime | None = wrapper.ops.convert_datetimefield_value(row[0], None, wrapper)
    return value


def _stamp(wrapper: Any) -> tuple[int, int, int] | None:
    """Changes whenever a row of the in-memory database may have changed; None if unknown.

    SQLite counts the rows its connection changed (every thread of the
    process shares it: ORM, raw SQL, triggers), and ``data_version`` changes
    when another connection (another process of the host) committed. A
    rollback changes neither: inside a transaction, and on a server's
    database (cluster mode), there is no stamp.
    """
    database = getattr(wrapper, "memdb_database", None)
    connection = getattr(database, "connection", None)
    if database is None or not isinstance(connection, sqlite3.Connection):
        return None
    try:
        with database.lock:
            if connection.in_transaction:
                return None
            version = connection.execute("PRAGMA data_version").fetchone()[0]
            return id(connection), connection.total_changes, version
    except sqlite3.Error:  # closed: the lookup through Django reopens or reports it
        return None


# Per model, on SQLite: the stamp of the database when a lookup found no
# expired row, and the earliest value of the field then. Until the stamp
# changes no row is written, so none expires before that value does.
_clear: dict[type[models.Model], tuple[tuple[int, int, int], datetime.datetime | None]] = {}


def _has_expired(model: type[models.Model], spec: Expiry, wrapper: Any, now: datetime.datetime) -> bool:
    assert spec.field is not None
    cutoff = spec.cutoff(now)
    stamp = _stamp(wrapper)
    if stamp is None:
        return any_expired(model, now)
    known = _clear.get(model)
    if known is not None and known[0] == stamp and (known[1] is None or cutoff < known[1]):
        return False
    earliest = _earliest(model, wrapper, spec.field)  # after the stamp: a write in between changes it
    if earliest is not None and earliest <= cutoff:
        return True
    _clear[model] = (stamp, earliest)
    return False


# Per model: held by the thread of this process that purges it, so that the
# others wait for that purge instead of deleting the same rows beside it.
_purging: dict[type[models.Model], threading.Lock] = {}
_purging_guard = threading.Lock()
_local = threading.local()


def _purge_lock(model: type[models.Model]) -> threading.Lock:
    lock = _purging.get(model)
    if lock is None:
        with _purging_guard:
            lock = _purging.setdefault(model, threading.Lock())
    return lock


def before_use(model: type[models.Model]) -> None:
    """Delete the expired rows of ``model`` before an ORM read or write uses it.

    Called by the router and the identity map for every use: a lookup in the
    field's index finds none in the common case, and on SQLite the lookup is
    skipped while no row of the database changed and the earliest value of
    the field it found has not expired. If some have expired, they
    are purged first (in slices: other threads of the process run between
    them), so that no read ever returns a row that had expired when it
    began. Another thread of this process purging the same model is waited
    for, rather than joined. Inside a transaction of the project the purge
    joins it (as savepoints): a rollback brings the rows back, and the next
    use deletes them again.
    """
    spec = declared(model)
    if spec is None or getattr(_local, "purging", False):
        return
    wrapper = connections[conf.MEMDB_NAME]
    if getattr(getattr(wrapper, "memdb_database", None), "bootstrapping", None) == threading.get_ident():
        return  # a migration or the restore of this thread: the tables are not ready
    now = clock()
    _local.purging = True
    try:
        if not _has_expired(model, spec, wrapper, now):
            return
        if _in_transaction(wrapper):
            # Its transaction holds the lock another purging thread needs: waiting would deadlock.
            purge(model, now)
            return
        with _purge_lock(model):
            # Looked up again: the thread this one waited for may have purged them all.
            if _has_expired(model, spec, wrapper, now):
                purge(model, now)
    except DatabaseError as exc:
        # Never fail the read or write that asked: the next one tries again.
        logger.warning("django_memdb: could not purge the expired rows of %s: %s", model._meta.label, exc)
    finally:
        _local.purging = False


def forget_purges() -> None:
    """Forget what was compiled and looked up for a database (a new database, or a test)."""
    _probes.clear()
    _clear.clear()


# The purger thread of this process (active expiry).

_purger: threading.Thread | None = None
_purger_lock = threading.Lock()
_stop = threading.Event()


DEFAULT_INTERVAL = 1.0


def _interval() -> float:
    """MEMDB_EXPIRY_INTERVAL, or the default while it is not a positive number
    (check E017 reports it): the thread must neither die nor spin on a bad value."""
    value = conf.MEMDB_EXPIRY_INTERVAL
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        return DEFAULT_INTERVAL
    return float(value)


def _purge_loop() -> None:
    # The last failure logged per model: a failure that repeats every interval
    # (a database down for a while) is logged once, not every second.
    failing: dict[type[models.Model], str] = {}
    while not _stop.wait(_interval()):
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
    global _purger, _purger_lock, _purging_guard
    _purger = None  # the parent's thread does not exist here
    _purger_lock = threading.Lock()
    _purging_guard = threading.Lock()
    _clear.clear()
    _purging.clear()  # a lock held by a thread of the parent would never be released here


os.register_at_fork(after_in_child=_after_fork_in_child)
