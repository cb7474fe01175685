"""Long work in slices bounded in time, with a pause between them that lets waiting threads in.

A slice holds the database lock for its whole transaction; a thread waiting
for that lock waits for one slice at most, if the working thread does not
take the lock again before the waiter runs. Python's locks are not fair, so
the pause between slices is what gives the waiter its turn.
"""

from __future__ import annotations

import time

# How long one slice may hold the lock: other threads wait this long at most.
SLICE_SECONDS = 0.010
# The pause between two slices, as a fraction of the slice (and at least PAUSE_MIN).
PAUSE_SHARE = 0.25
PAUSE_MIN = 0.001
# The first slice of a unit of work whose cost per item is not known yet.
FIRST_SIZE = 50
MAX_SIZE = 5000


class Pacer:
    """How many items the next slice takes, from how long the previous ones took.

    A slice's time is its work, which grows with its items, plus what does
    not (its commit): the work is sized to fill what the fixed part leaves
    of ``seconds``, but never less than half of it, so that a costly commit
    does not shrink the slices to nothing.
    """

    def __init__(self, seconds: float = SLICE_SECONDS, first: int = FIRST_SIZE, largest: int = MAX_SIZE) -> None:
        self.seconds = seconds
        self.size = first
        self.largest = largest
        self.per_item: float | None = None
        self.fixed = 0.0

    def measured(self, items: int, work: float, held: float | None = None) -> None:
        """A slice of ``items`` took ``work`` seconds, and held the lock ``held`` (default: ``work``)."""
        if items <= 0:
            return
        cost = work / items
        # Smoothed, so that one slice slowed down by the machine does not shrink every later one.
        self.per_item = cost if self.per_item is None else 0.5 * (self.per_item + cost)
        fixed = max(0.0, (work if held is None else held) - work)
        self.fixed = 0.5 * (self.fixed + fixed)
        budget = max(self.seconds - self.fixed, self.seconds / 2)
        target = int(budget / self.per_item) if self.per_item > 0 else self.size * 2
        # Grows at most twofold per slice: a cheap slice may precede an expensive one.
        self.size = max(1, min(self.largest, target, self.size * 2))


def pause_after(slice_seconds: float) -> None:
    """Sleep between two slices so that the threads waiting for the lock take it first."""
    time.sleep(max(PAUSE_MIN, slice_seconds * PAUSE_SHARE))
