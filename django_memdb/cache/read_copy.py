"""The entries a process last read or wrote, served without a statement while still current.

A read of SQLite through the shared connection costs a statement (several µs);
a dictionary lookup does not. The copy is trusted only while the database
holds what it held when the copy was taken: the connection's
``total_changes`` moves when this process writes anything, through the cache
or not, and, in a database shared by the processes of the host, ``PRAGMA
data_version`` when another process commits. Either change forgets the whole
copy. The store's own writes keep it: they update the copy, provided nothing
else changed in between.

A read does not ask ``data_version`` (a statement and the file locks of a read
transaction) while the header of the WAL index (wal_header.py) is as it was
just before the last time it was asked: no connection committed since, this
process's included. Nor does a write of the store when the header's commit
counter moved by exactly one, its own commit.

Inside a transaction of this process the copy is neither used nor filled: the
transaction may roll back what it reads.
"""

from __future__ import annotations

import sqlite3
from typing import Any, cast

from .wal_header import WalHeader, commits_between

# value, kind, expires (Unix time or None), accessed (recency stamp)
Entry = tuple[Any, int, "float | None", int]

_DATA_VERSION = "PRAGMA data_version"


class ReadCopy:
    """Used under the lock of the shared connection, like every statement on it."""

    def __init__(self, connection: sqlite3.Connection, bound: int, shared_by_processes: bool) -> None:
        self.connection = connection
        # A database of this process alone: only its own writes change it, no statement to ask.
        self.shared_by_processes = shared_by_processes
        self.bound = max(1, bound)
        self.entries: dict[str, Entry] = {}
        # (data_version, total_changes) the entries are current for; None: not taken yet.
        self.version: tuple[int, int] | None = None
        # Host mode: the WAL index header, and its bytes read just before data_version was last asked.
        self.header: WalHeader | None = None
        self.seen: bytes | None = None

    def _data_version(self) -> int:
        if not self.shared_by_processes:
            return 0
        return int(self.connection.execute(_DATA_VERSION).fetchone()[0])

    def _only_this_commit(self, header: bytes | None) -> bool:
        """Whether exactly one transaction committed since the header last seen: the write just made.

        A write that changed rows (``total_changes`` moved) committed one; one
        more, of another process, would count two. A torn read is at worst
        taken as ``seen`` and differs from the next header read.
        """
        return header is not None and self.seen is not None and commits_between(self.seen, header) == 1

    def _current(self) -> bool:
        """Whether the entries are still current; forgets them if not. False inside a transaction."""
        connection = self.connection
        if connection.in_transaction:
            return False
        seen = None
        if self.header is not None:
            # Read before data_version: a commit in between shows at the next read.
            seen = self.header.read()
            if seen == self.seen and self.version is not None and self.version[1] == connection.total_changes:
                return True
        version = (self._data_version(), connection.total_changes)
        if version != self.version:
            self.entries.clear()
            self.version = version
        self.seen = seen
        return True

    def get(self, key: str) -> Entry | None:
        if key in self.entries and self._current():
            return self.entries.get(key)
        return None

    def may_keep(self) -> bool:
        """Before reading a row: whether it may be kept once read.

        A row read outside a transaction is current when it is read, so keeping
        it is safe whatever the version (a change since forgets it with the
        rest). An empty copy takes the version first, before the read.
        """
        if self.connection.in_transaction:
            return False
        if not self.entries:
            self._current()
        return True

    def keep(self, key: str, entry: Entry) -> None:
        if len(self.entries) >= self.bound:
            self.entries.clear()
        self.entries[key] = entry

    def wrote(self, before: int, changed: dict[str, Entry | None] | None) -> None:
        """After a committed write of the store: ``changed`` keys now hold these entries (None: gone).

        ``before`` is ``total_changes`` before the write. If nothing but this
        write changed the database since the version was taken, the copy is
        updated and stays current; else (or with ``changed`` None, a write
        whose effects are not all known, such as an eviction) it is forgotten.
        """
        connection = self.connection
        if connection.in_transaction:
            return  # inside this thread's transaction: the change of total_changes forgets the copy later
        version = self.version
        seen = None if self.header is None else self.header.read()  # after this write, before data_version
        if (
            changed is not None and version is not None and version[1] == before
            and connection.total_changes > before and self._only_this_commit(seen)
        ):
            data_version = version[0]  # moved by the commits of other connections only
        else:
            data_version = self._data_version()
        if changed is not None and version is not None and version == (data_version, before):
            entries = self.entries
            if len(entries) + len(changed) <= self.bound and None not in changed.values():
                entries.update(cast("dict[str, Entry]", changed))  # the sets held back: one call for all
            else:
                for key, entry in changed.items():
                    if entry is None:
                        entries.pop(key, None)
                    else:
                        self.keep(key, entry)
        else:
            self.entries.clear()
        # Empty, or updated by this write only: current for the version as it is now.
        self.version = (data_version, connection.total_changes)
        self.seen = seen
