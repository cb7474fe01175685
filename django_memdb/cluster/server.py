"""Cluster mode: the server-wide lock, writes the capture skips, and sequences, on the alias's connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import models

from ..exceptions import PersistenceError


class Hold:
    """A hold of the server lock: whether it was taken, and what its release runs first."""

    def __init__(self, taken: bool) -> None:
        self.taken = taken
        # A statement (no parameters) run before the release, in the same round trip where possible.
        self.release_after: str | None = None


@contextmanager
def server_lock(wrapper: Any, only_if: str | None = None) -> Iterator[Hold]:
    """One process of the cluster at a time: rebuilds and flushes.

    ``only_if``: a query; the lock is taken only if it returns a row, in the
    same round trip where the server allows it (``Hold.taken`` says).
    """
    sql = wrapper.memdb_dialect
    combined = None if only_if is None else sql.lock_if(only_if)
    row: Any = ()  # nothing to check first
    with wrapper.cursor() as cursor:
        if only_if is not None and combined is None:
            cursor.execute(only_if)
            row = cursor.fetchone()
        if row is not None:
            cursor.execute(combined or sql.lock())
            row = cursor.fetchone()
    if row is None:
        yield Hold(False)
        return
    if row[0] != 1 and sql.vendor == "mysql":
        raise PersistenceError(
            "Timed out after 120 s waiting for the lock of the in-memory tables "
            "(another process rebuilds or journals them)."
        )
    hold = Hold(True)
    try:
        yield hold
    except BaseException:
        with wrapper.cursor() as cursor:
            cursor.execute(sql.unlock())
        raise
    if hold.release_after is None:
        with wrapper.cursor() as cursor:
            cursor.execute(sql.unlock())
        return
    try:
        with wrapper.cursor() as cursor:
            for statement in sql.unlock_after(hold.release_after):
                cursor.execute(statement)
    except BaseException:
        _unlock_quietly(wrapper)  # the statement before the release failed, or the release did
        raise


def _unlock_quietly(wrapper: Any) -> None:
    """Release the lock after an error; a dropped connection released it already."""
    try:
        with wrapper.cursor() as cursor:
            cursor.execute(wrapper.memdb_dialect.unlock())
    except Exception:  # noqa: S110 (the caller raises the first error)
        pass


@contextmanager
def not_captured(wrapper: Any, model_list: list[type[models.Model]]) -> Iterator[None]:
    """Writes of this connection that the capture triggers skip (a reload from storage)."""
    sql = wrapper.memdb_dialect
    with wrapper.cursor() as cursor:
        cursor.execute(sql.restoring_on)
    try:
        yield
    finally:
        with wrapper.cursor() as cursor:
            cursor.execute(sql.restoring_off)
        reset_sequences(wrapper, model_list)


def reset_sequences(wrapper: Any, model_list: list[type[models.Model]]) -> None:
    """PostgreSQL's sequences do not follow explicit keys: start them after the loaded rows."""
    with wrapper.cursor() as cursor:
        for statement in wrapper.memdb_dialect.sequence_resets(model_list):
            cursor.execute(statement)
