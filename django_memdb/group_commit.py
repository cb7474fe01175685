"""Group commit: the commits of threads that flush at once share one write to storage.

Under the ``commit`` policy each commit of a persistent table returns once
its changes are stored, and each store is a transaction (a disk sync) of
the spool database. The in-memory database's lock must not be held while
that sync runs, or every thread's reads and writes wait for it. So one
thread of the process at a time, the *writer*, reads a batch (the change
records and the current state of their rows) under the lock, releases it,
writes the batch to storage, and every thread whose commit the batch holds
returns once it is stored. Commits made meanwhile wait, and the next writer
stores them all together. spool.py runs a batch; this module coordinates.

Tickets. Batches are numbered in the order they are read. Right after its
commit, under the lock, a thread takes as its ticket the number of a batch
that holds its changes (``ticket``): 0 if no change record is left or the
last one is at most the last record of a batch already stored, the number of
the batch being written if the last record is in it, else the next batch,
which will be read after the commit. The thread returns once the batch of
its ticket (or a later one) is stored; if the writer of that batch fails, it
becomes a writer itself and retries. A thread that finds nobody writing
needs no ticket: it becomes the writer at once (``begin_now``), under the
hold of the lock it took after its commit, and its batch holds its changes.

Why no committed change is lost or stored out of order:

* Batches are written in the order they are read: one writer at a time per
  process (and in host mode the host's spooling lock, held from the read of
  a batch to the settling below, orders the processes of the host). So a
  later journal entry never holds an older state of a row.
* A batch's change records are deleted only once it is stored ("settling",
  under the lock); a failed batch deletes none and the next batch reads them
  again. Change records are numbered by ``seq INTEGER PRIMARY KEY``, whose
  numbers are reused only once every record is deleted; the records up to a
  batch's last one stay until it is settled, so every record numbered at most
  that one is in the batch (a later record gets a higher number), and
  deleting them deletes nothing newer.
* A thread that holds the lock when its flush returns (a TestCase, compaction,
  the inspection commands) finds nothing in flight and nothing left to
  settle, and no writer can start before it releases the lock: storage does
  not move under it.

Why it cannot deadlock (``database.lock`` is the in-memory lock):

1. A thread becomes the writer only while it holds ``database.lock``; from
   then until it stops being the writer it never waits for the lock (it
   reads under the hold it has, then writes storage without it).
2. So a thread that holds the lock may wait for the writer (``wait``,
   ``quiesce``): the writer finishes without the lock.
3. Settling needs the lock. A writer stops being the writer before it waits
   for the lock to settle, and what it leaves (the records to delete, the
   host's spooling lock) may be settled by any thread holding the lock: the
   next writer does so before it reads, ``quiesce`` callers right after. No
   thread holding the lock waits for the thread that waits to settle. (A
   turn that holds nothing, mode ``process``, is not settled by its writer
   at all: it is left to them.)
4. Threads that do not hold the lock wait for the writer without it.

Why no thread sleeps for a batch nobody writes: a thread sleeps (``wait``)
only while a writer is there, and the writer's ``end`` wakes, besides the
threads whose batch it stored, the sleeper with the lowest later ticket,
which then becomes the writer, or finds one (and sleeps until that one's
``end``), or finds its batch stored. A failed batch wakes every sleeper.
Should a woken thread leave without doing either (an exception between the
wake-up and ``begin``), the others look again by themselves after RECHECK
seconds. Waking only these, not every sleeper (most of which would sleep
again), spares switches between threads, which the process pays for in CPU
and with the GIL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple


class Leftover(NamedTuple):
    """What a writer leaves to the next holder of the lock once it stopped writing."""

    # The batch's change records up to this seq are stored: delete them (None: keep them, it failed).
    last: int | None
    # Ends the batch's turn to write storage (the host's spooling lock); called under the lock.
    close: Callable[[], Any]


# Seconds a waiting thread sleeps before it looks at the batches again by itself.
RECHECK = 0.1


class GroupCommit:
    """Who writes storage for a database of this process, and which batches are stored."""

    def __init__(self) -> None:
        self._changed = threading.Lock()
        # Threads asleep until a batch ends: (ticket, a lock held until the wake-up).
        self._sleepers: list[tuple[int, Any]] = []
        self._writer: int | None = None
        self._read = 0  # number of the last batch read
        self._stored = 0  # number of the last batch stored
        self._in_flight: tuple[int, int] | None = None  # (number, last seq) of the batch being written
        self._leftover: Leftover | None = None
        # The lease moved on under a write without the lock: the next batch claims it under the lock.
        self.claim_next = False

    def writing(self) -> bool:
        """Whether this thread is the writer (a flush it re-enters has nothing to do)."""
        return self._writer == threading.get_ident()

    def ticket(self, last_change: int | None) -> int:
        """Under the lock, right after a commit: the batch that stores it (0: it is stored).

        ``last_change``: the highest seq of the change records, None if there is none.
        """
        with self._changed:
            if last_change is None:
                return 0
            left = self._leftover
            if left is not None and left.last is not None and last_change <= left.last:
                return 0
            if self._in_flight is not None and last_change <= self._in_flight[1]:
                return self._in_flight[0]
            return self._read + 1

    def wait(self, ticket: int) -> bool:
        """Wait while another thread writes; True once the batch ``ticket`` (or a later one) is stored.

        False: nobody writes (become the writer), or this thread was woken to
        become the next writer (``end``); either way, try ``begin`` and wait again.
        """
        with self._changed:
            if self._writer is None or self._stored >= ticket:
                return self._stored >= ticket
            woken = self._sleep(ticket)
        self._slept(woken)
        with self._changed:
            return self._stored >= ticket

    def _sleep(self, ticket: int) -> Any:
        """Under ``_changed``: a lock that ``end`` releases when this thread is to wake up."""
        woken = threading.Lock()
        woken.acquire()
        self._sleepers.append((ticket, woken))
        return woken

    def _slept(self, woken: Any) -> None:
        """Sleep until ``end`` wakes this thread, or RECHECK seconds passed: should a
        thread woken to write the next batch leave without writing it (an exception
        before ``begin``), the others look again by themselves."""
        if not woken.acquire(timeout=RECHECK):
            with self._changed:
                self._sleepers = [(ticket, lock) for ticket, lock in self._sleepers if lock is not woken]

    def begin(self, ticket: int) -> int | None:
        """Under the lock: become the writer of the next batch, and return its number.

        None when the batch ``ticket`` was stored meanwhile or another thread
        became the writer first (``wait`` again).
        """
        with self._changed:
            if self._stored >= ticket or self._writer is not None:
                return None
            self._writer = threading.get_ident()
            self._read += 1
            return self._read

    def begin_now(self) -> int | None:
        """Under the lock, right after a commit: become the writer of the next batch if
        nobody writes, and return its number (None: another thread writes, take a ticket).

        The batch is read under this same hold of the lock, after the commit, so it
        holds the caller's changes: no ticket is needed (one statement less per commit).
        """
        with self._changed:
            if self._writer is not None:
                return None
            self._writer = threading.get_ident()
            self._read += 1
            return self._read

    def begin_turn(self) -> None:
        """Under the lock, with no writer (after ``quiesce``): become the writer without a batch.

        For a write to storage that is not a batch (an online compaction, compaction.py):
        commits made meanwhile wait for it like for a batch, and are stored by the
        next one. It ends with ``end(0, stored=False, leftover)``.
        """
        with self._changed:
            if self._writer is not None:
                raise RuntimeError("django_memdb: a turn to write storage was taken while a batch is written")
            self._writer = threading.get_ident()

    def in_flight(self, number: int, last: int) -> None:
        """Under the lock: the writer releases it to write batch ``number``, records up to ``last``."""
        with self._changed:
            self._in_flight = (number, last)

    def end(self, number: int, stored: bool, leftover: Leftover | None = None) -> None:
        """The writer is done with batch ``number``; the threads it concerns wake up:
        those whose batch is stored, and the one to write the next batch (see the
        module's docstring); after a failed batch, every sleeper (they retry)."""
        with self._changed:
            if stored:
                self._stored = max(self._stored, number)
            if leftover is not None:
                if self._leftover is not None:  # cannot happen: a writer settles before it reads
                    raise RuntimeError("django_memdb: a batch was left unsettled")
                self._leftover = leftover
            self._in_flight = None
            self._writer = None
            sleepers, done = self._sleepers, self._stored
            woken = [lock for ticket, lock in sleepers if ticket <= done or not stored]
            rest = [(ticket, lock) for ticket, lock in sleepers if ticket > done and stored]
            if rest:
                woken.append(self._next_writer(rest))
            self._sleepers = rest
        for lock in woken:
            lock.release()

    @staticmethod
    def _next_writer(rest: list[tuple[int, Any]]) -> Any:
        """Take the thread with the lowest ticket out of ``rest``: its batch comes first."""
        following = min(range(len(rest)), key=lambda index: rest[index][0])
        return rest.pop(following)[1]

    def idle(self) -> bool:
        """Whether no thread writes storage now (under the lock: none can start until it is released)."""
        with self._changed:
            return self._writer is None

    def quiesce(self) -> None:
        """Under the lock: wait until no other thread writes (none can start until the lock is released)."""
        me = threading.get_ident()
        while True:
            with self._changed:
                if self._writer is None or self._writer == me:
                    return
                woken = self._sleep(0)  # ticket 0: woken at the end of every batch
            self._slept(woken)

    def take_leftover(self) -> Leftover | None:
        """Under the lock: what the last writer left to settle, now the caller's to settle."""
        with self._changed:
            left, self._leftover = self._leftover, None
            return left


def of(database: Any) -> GroupCommit:
    """The coordinator of ``database`` (created on first use; a forked child opens new databases)."""
    attributes = vars(database)
    found: GroupCommit | None = attributes.get("_group_commit")
    if found is None:
        found = attributes.setdefault("_group_commit", GroupCommit())  # atomic: one wins
    return found


def holds(lock: Any) -> bool:
    """Whether this thread holds the (re-entrant) lock."""
    return bool(lock._is_owned())
