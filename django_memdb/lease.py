"""One writer per stored database: the lease that stops processes clobbering each other.

Each process holds its own in-memory copy. Two processes journaling the same
tables would overwrite each other's rows, so a process must own the lease
row of the alias to write, and may only take it over from a process that
left (lease expired, or its pid is gone on this host) when nothing was
written since this process loaded its copy (same ``generation``).
"""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import IntegrityError, transaction
from django.utils import timezone

from .backend.shared import SharedDatabase
from .conf import conf
from .exceptions import PersistenceError
from .models import SpoolLease

HOST = socket.gethostname()[:255]


def token(database: SharedDatabase) -> str:
    if database.lease_token is None:
        database.lease_token = uuid.uuid4().hex
    return database.lease_token


def _alive_elsewhere(lease: SpoolLease, now: datetime.datetime) -> bool:
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


def _refusal(lease: SpoolLease, alias: str) -> PersistenceError:
    return PersistenceError(
        f"The persistent tables of '{alias}' are written by another process (pid "
        f"{lease.pid} on {lease.host}, lease until {lease.expires:%Y-%m-%d %H:%M:%S %Z}). "
        f"Each process has its own in-memory copy, so a second writer would overwrite "
        f"the first one's rows: run one writing process, or see 'Deployment' in the README."
    )


def _stale(alias: str) -> PersistenceError:
    return PersistenceError(
        f"Another process wrote the persistent tables of '{alias}' after this process "
        f"loaded them; writing this process's older copy would lose those rows. "
        f"Restart this process (or call django_memdb.tools.restore.restore()) to load them."
    )


def observe(database: SharedDatabase, using: str) -> None:
    """Remember the generation of storage this process loaded."""
    lease = SpoolLease.objects.using(using).filter(name=conf.MEMDB_NAME).first()
    database.lease_generation = lease.generation if lease else 0


CHECK_SECONDS = 1.0


def check(database: SharedDatabase, using: str) -> None:
    """Refuse a write early when it could not be stored (no row is locked).

    A passed check is trusted for a second: bulk_create asks once per object.
    """
    now = timezone.now()
    for until in (database.lease_until, database.lease_checked_until):
        if until is not None and until > now:
            return
    lease = SpoolLease.objects.using(using).filter(name=conf.MEMDB_NAME).first()
    if lease is not None and lease.owner != token(database):
        if _alive_elsewhere(lease, now):
            raise _refusal(lease, conf.MEMDB_NAME)
        if lease.generation != database.lease_generation:
            raise _stale(conf.MEMDB_NAME)
    database.lease_checked_until = now + datetime.timedelta(seconds=CHECK_SECONDS)


def claim(database: SharedDatabase, using: str) -> None:
    """Own the lease for one more journal write; call inside its transaction."""
    now = timezone.now()
    until = now + datetime.timedelta(seconds=conf.MEMDB_LEASE_SECONDS)
    mine, alias = token(database), conf.MEMDB_NAME
    leases = SpoolLease.objects.using(using).filter(name=alias)
    bump = {"expires": until, "host": HOST, "pid": os.getpid()}
    generation = database.lease_generation + 1
    if leases.filter(owner=mine, generation=database.lease_generation).update(generation=generation, **bump):
        pass
    else:
        lease = leases.first()
        if lease is None:
            try:
                with transaction.atomic(using=using):
                    SpoolLease.objects.using(using).create(name=alias, owner=mine, generation=generation, **bump)
            except IntegrityError:
                raise _refusal(leases.get(), alias) from None
        elif lease.owner != mine and _alive_elsewhere(lease, now):
            raise _refusal(lease, alias)
        elif lease.owner != mine and lease.generation != database.lease_generation:
            raise _stale(alias)
        else:
            # Ours with another generation only after our own rolled-back bump.
            generation = lease.generation + 1
            if not leases.filter(owner=lease.owner, generation=lease.generation).update(
                owner=mine, generation=generation, **bump
            ):
                raise _refusal(leases.get(), alias)
    database.lease_generation, database.lease_until = generation, until


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
