"""The header of a WAL database's shared index: read to tell that some connection committed.

Every commit to a database in WAL mode rewrites the header at the start of its
``-shm`` file (a change counter, the last valid frame, salts and checksum;
https://sqlite.org/walformat.html), before the commit returns. Equal header
bytes mean the same committed content: SQLite itself compares them to decide
whether its page cache is still valid. Reading them costs a ``pread``, where
``PRAGMA data_version`` costs a statement and the file locks of a read
transaction. A torn read (a commit rewriting the header meanwhile) only looks
like one more change.
"""

from __future__ import annotations

import os
import sqlite3
import sys

_HEADER = 48  # one copy of the wal-index header
_CHANGE = slice(8, 12)  # iChange: a native-endian u32 counter, incremented by every commit


def commits_between(earlier: bytes, later: bytes) -> int | None:
    """Transactions committed between two reads of the header (modulo 2**32); None if a read failed."""
    if len(earlier) < _HEADER or len(later) < _HEADER:
        return None
    counter = int.from_bytes(later[_CHANGE], sys.byteorder) - int.from_bytes(earlier[_CHANGE], sys.byteorder)
    return counter & 0xFFFFFFFF


class WalHeader:
    """Reads the header of the database that ``connection`` has open as ``main``."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor = descriptor

    @classmethod
    def open(cls, connection: sqlite3.Connection) -> WalHeader | None:
        """For a file database in WAL mode with a ``-shm`` file; None otherwise (ask SQLite then)."""
        try:
            if str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                return None
            path = next((row[2] for row in connection.execute("PRAGMA database_list") if row[1] == "main"), "")
            if not path:
                return None
            descriptor = os.open(path + "-shm", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (sqlite3.Error, OSError):
            return None
        header = cls(descriptor)
        if len(header.read()) < _HEADER:  # not set up by SQLite (heap-memory index): no use
            header.close()
            return None
        return header

    def read(self) -> bytes:
        try:
            return os.pread(self.descriptor, _HEADER, 0)
        except OSError:
            return b""  # never equal to a header read before: ask SQLite

    def close(self) -> None:
        """Only where no other thread may read it (a forked child); else it closes when dropped."""
        descriptor, self.descriptor = self.descriptor, -1
        if descriptor >= 0:
            os.close(descriptor)

    def __del__(self) -> None:
        self.close()
