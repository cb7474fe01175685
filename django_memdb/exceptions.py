"""Errors raised by django-memdb; each message names the model and the way out."""

from __future__ import annotations


class MemDBError(Exception):
    """Base class of django-memdb's errors."""


class PersistenceError(MemDBError):
    """A committed in-memory change could not be written to storage.

    The change stays pending in memory and is retried at the next flush.
    """


class RestoreError(MemDBError):
    """Stored data could not be loaded into memory; the stored rows are kept."""


class ProcessorError(MemDBError):
    """A store_save/store_load processor failed or returned unusable data."""
