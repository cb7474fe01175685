"""One writer per stored database: the lease that stops processes clobbering each other.

Each process holds its own in-memory copy. Two processes journaling the same
tables would overwrite each other's rows, so a process must own the lease
of the alias to write, and may only take it over from a process that left
when nothing was written since this process loaded its copy.

There are two kinds of lease. Both keep the lease row (owner, generation),
and a takeover compares what the row says with what this process recorded
at its load.

**The row lease** (a SQLite spool; mode ``host``, whose processes share one
lease): the row also says until when it runs (``expires``). The owner left
when the row expired or its pid is gone on this host. The generation is
bumped by ``claim`` (an owner's first write, a takeover, a renewal, snapshot
writes) and by ``observe`` (a process loading storage), not by every journal
write: an owner that holds the lease appends in one statement conditional on
the lease row still naming it with the generation it knows (``held``,
storage.append_journal_held). Why that keeps the guarantee:

* Every bump produces a new value, and only the process that bumped records
  it (the processes of one host share theirs through the host file).
* A loader bumps before it reads storage, so whatever was journaled before
  the bump is in its copy. The bump and the owner's conditional append both
  touch the lease row and are serialised (row lock, or SQLite's write lock),
  so an append either commits before the bump, or runs after it, sees a
  generation the owner does not know, writes nothing, and goes through
  ``claim``, which bumps the generation past the loader's in the transaction
  of the write.
* A takeover compares the row's generation with the one the process
  recorded: equal only if nobody journaled anything after that process's
  load. After a takeover the old owner's conditional appends no longer
  match (another owner), so they fall back to ``claim``, which refuses.

**The server's lock** (mode ``process`` on PostgreSQL or MariaDB,
server_lease.py): the owner holds a session-level advisory lock on a storage
connection of its own, and the owner is alive exactly as long as that
session holds it; the server releases it when the session ends (exit,
SIGKILL, a dropped connection). ``claim`` takes the lock first and refuses
if another session holds it; ``check`` probes it. Once the lock is taken and
the row claimed on that session, journal entries are plain INSERTs on it, which
neither read nor bump the lease row. Why that keeps the guarantee:

* Only one session holds the lock, and an INSERT that commits on the lock's
  session ran while the lock was held: no other process wrote meanwhile. A
  session that died took its lock and its unfinished transaction with it;
  the next write takes the lock on a new session and claims the row again
  (refused if another process took over meanwhile) before any plain INSERT.
* A loader bumps the generation and then reads the journal's highest id
  (its watermark) before it reads storage. The owner's plain INSERTs come
  from one session, one after another, so everything journaled before the
  watermark was read is in the loader's copy, and everything after it has a
  higher id. Snapshot writes and removals, which delete journal rows, still
  go through ``claim`` and bump the generation.
* A takeover (the lock was free: the owner is gone) therefore requires both
  the recorded generation and no journal id above the recorded watermark:
  nothing was written after this process's load.

Two loaders: the first one's generation is passed by the second one's bump,
so it is refused as stale at takeover even if nothing was written between
the two loads. That is conservative: it restarts (or restores) and retries.
"""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import IntegrityError, InterfaceError, OperationalError, connections, transaction
from django.db.models import F
from django.utils import timezone

from . import reconnect, server_lease, sharing, storage
from .backend.shared import SharedDatabase
from .conf import conf
from .exceptions import PersistenceError
from .models import SpoolLease
from .transactions import user_in_atomic

HOST = socket.gethostname()[:255]


def token(database: SharedDatabase) -> str:
    if database.lease_token is None:
        database.lease_token = uuid.uuid4().hex
    return database.lease_token


def marker(database: SharedDatabase) -> tuple[str, int]:
    """(token, generation): what the host's file records for its other processes (modes/host.py)."""
    return token(database), database.lease_generation


def adopt(database: SharedDatabase, recorded: tuple[str, int]) -> None:
    """The lease the processes of a host share: the one the host's file recorded."""
    database.lease_token, database.lease_generation = recorded


def load_pending(database: SharedDatabase) -> bool:
    """Whether this process's last load waits for the commit of its bump (see observe)."""
    return database.lease_generation == UNKNOWN


def record(database: SharedDatabase, generation: int) -> None:
    """The generation of this process's load of storage (see observe)."""
    database.lease_generation = generation


def holding(database: SharedDatabase) -> bool:
    """Whether this process ever took part in the lease (and has one to release)."""
    return database.lease_token is not None


def _server_lease(database: SharedDatabase, using: str) -> bool:
    return server_lease.applies(database, connections[using])


def _alive_elsewhere(database: SharedDatabase, using: str, lease: SpoolLease, now: datetime.datetime) -> bool:
    """Whether the process the lease row names may still write: its server lock is
    held (the server releases it when that session ends), or its row lease runs."""
    if _server_lease(database, using):
        return server_lease.lock(using).held_elsewhere()
    if lease.expires <= now:
        return False
    if lease.host == HOST:
        try:
            os.kill(lease.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def _refusal(lease: SpoolLease | None, alias: str, server: bool = False) -> PersistenceError:
    if lease is None:
        writer = "which holds the server's lock"
    elif server:
        writer = f"pid {lease.pid} on {lease.host}, which holds the server's lock"
    else:
        writer = f"pid {lease.pid} on {lease.host}, lease until {lease.expires:%Y-%m-%d %H:%M:%S %Z}"
    return PersistenceError(
        f"The persistent tables of '{alias}' are written by another process ({writer}). "
        f"Each process has its own in-memory copy, so a second writer would overwrite "
        f"the first one's rows: run one writing process, or see 'Deployment' in the README."
    )


def _stale(alias: str) -> PersistenceError:
    return PersistenceError(
        f"Another process wrote the persistent tables of '{alias}' after this process "
        f"loaded them; writing this process's older copy would lose those rows. "
        f"Restart this process (or call django_memdb.tools.restore.restore()) to load them."
    )


def _unreachable(using: str, exc: Exception) -> PersistenceError:
    return PersistenceError(
        f"Writes to the persistent tables of '{conf.MEMDB_NAME}' are refused: the '{using}' "
        f"database, which stores them, cannot be reached to renew this process's lease ({exc}). "
        f"Nothing was written and the tables in memory are unchanged; retry the write once the "
        f"'{using}' database is reachable again (changes still pending are stored then)."
    )


# The generation of a load whose bump is not committed yet: matches no lease row.
UNKNOWN = -1


def observe(database: SharedDatabase, using: str) -> None:
    """Bump the generation of storage this process is about to load, and remember it.

    Called before the load (see the module's docstring). Inside a transaction
    of the project on the spool database, the bump only counts once that
    commits: until then the generation is UNKNOWN, which refuses takeovers.
    """
    leases = SpoolLease.objects.using(using).filter(name=conf.MEMDB_NAME)
    pending = user_in_atomic(connections[using])
    with transaction.atomic(using=using):
        if leases.update(generation=F("generation") + 1):
            generation = leases.values_list("generation", flat=True).get()
        else:
            generation, pending = 0, False  # no lease yet: no bump to lose
        if _server_lease(database, using):
            # After the bump, before the load: what a writer appends later has a higher id.
            server_lease.loaded(database, storage.journal_watermark(using))
    # Recorded by the mode: in host mode for every process of the host.
    record = sharing.of(database).observed
    if not pending:
        record(database, generation)
        return
    database.lease_generation = UNKNOWN

    def committed() -> None:
        record(database, generation, unless_claimed=True)

    transaction.on_commit(committed, using=using)


CHECK_SECONDS = 1.0


def check(database: SharedDatabase, using: str) -> None:
    """Refuse a write early when it could not be stored (no row is locked).

    A passed check is trusted for a second: bulk_create asks once per object.
    """
    now = timezone.now()
    for until in (database.lease_until, database.lease_checked_until):
        if until is not None and until > now:
            return
    try:
        lease = SpoolLease.objects.using(using).filter(name=conf.MEMDB_NAME).first()
        if lease is not None and lease.owner != token(database):
            if _alive_elsewhere(database, using, lease, now):
                raise _refusal(lease, conf.MEMDB_NAME, _server_lease(database, using))
            if _changed_since_load(database, using, lease):
                raise _stale(conf.MEMDB_NAME)
    except (OperationalError, InterfaceError) as exc:  # unreachable; a missing table stays itself
        reconnect.reset_if_broken(connections[using])
        raise _unreachable(using, exc) from exc
    database.lease_checked_until = now + datetime.timedelta(seconds=CHECK_SECONDS)


def _changed_since_load(database: SharedDatabase, using: str, lease: SpoolLease) -> bool:
    """Whether another owner wrote storage after this process loaded it (see the module's docstring)."""
    if lease.generation != database.lease_generation:
        return True
    if not _server_lease(database, using):
        return False
    loaded = server_lease.watermark(database)
    return loaded is None or storage.journal_watermark(using) > loaded


def claim(database: SharedDatabase, using: str) -> None:
    """Own the lease (bumping its generation) for a write to storage; call inside its transaction."""
    now = timezone.now()
    until = now + datetime.timedelta(seconds=conf.MEMDB_LEASE_SECONDS)
    mine, alias = token(database), conf.MEMDB_NAME
    leases = SpoolLease.objects.using(using).filter(name=alias)
    server = _server_lease(database, using)
    if server and not server_lease.lock(using).acquire():
        raise _refusal(leases.first(), alias, server)
    bump = {"expires": until, "host": HOST, "pid": os.getpid()}
    generation = max(database.lease_generation, 0) + 1
    if leases.filter(owner=mine, generation=database.lease_generation).update(generation=generation, **bump):
        pass
    else:
        lease = leases.first()
        if lease is None:
            try:
                with transaction.atomic(using=using):
                    SpoolLease.objects.using(using).create(name=alias, owner=mine, generation=generation, **bump)
            except IntegrityError:
                raise _refusal(leases.get(), alias, server) from None
        elif lease.owner != mine and _alive_elsewhere(database, using, lease, now):
            raise _refusal(lease, alias, server)
        elif lease.owner != mine and _changed_since_load(database, using, lease):
            raise _stale(alias)
        else:
            # Ours with another generation: a loader's bump (observe), our own
            # rolled-back bump, or a load of ours still UNKNOWN. Only we wrote
            # under our token, so our copy is the newest: carry on.
            generation = lease.generation + 1
            if not leases.filter(owner=lease.owner, generation=lease.generation).update(
                owner=mine, generation=generation, **bump
            ):
                raise _refusal(leases.get(), alias, server)
    database.lease_generation, database.lease_until = generation, until
    if server:
        transaction.on_commit(server_lease.claimed(database, using), using=using)


def held(database: SharedDatabase) -> tuple[str, str, int] | None:
    """(name, owner, generation) of the lease this process may append under without a claim.

    None when the next write must claim: no lease yet, or less than half of
    MEMDB_LEASE_SECONDS left (the claim renews it). The append itself checks
    that the lease row still is this (storage.append_journal_held).
    """
    until, mine = database.lease_until, database.lease_token
    if until is None or mine is None or database.lease_generation < 0:
        return None
    if (until - timezone.now()).total_seconds() <= conf.MEMDB_LEASE_SECONDS / 2:
        return None
    return conf.MEMDB_NAME, mine, database.lease_generation


@contextmanager
def undone_on_error(database: SharedDatabase) -> Iterator[None]:
    """A claim inside a transaction that rolls back did not happen."""
    saved = database.lease_generation, database.lease_until
    try:
        yield
    except BaseException:
        database.lease_generation, database.lease_until = saved
        raise


def release(database: SharedDatabase, using: str) -> None:
    """Let another process take over at once (normal exit)."""
    if database.lease_token is not None:
        SpoolLease.objects.using(using).filter(name=conf.MEMDB_NAME, owner=database.lease_token).update(
            expires=timezone.now()
        )
        database.lease_until = None
    server_lease.lock(using).release()
