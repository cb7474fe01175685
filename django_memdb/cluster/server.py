"""Cluster mode: the server-wide lock, writes the capture skips, and sequences, on the alias's connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import models

from ..exceptions import PersistenceError


@contextmanager
def server_lock(wrapper: Any) -> Iterator[None]:
    """One process of the cluster at a time: rebuilds and flushes."""
    with wrapper.cursor() as cursor:
        cursor.execute(wrapper.memdb_dialect.lock())
        if cursor.fetchone()[0] != 1 and wrapper.memdb_dialect.vendor == "mysql":
            raise PersistenceError(
                "Timed out after 120 s waiting for the lock of the in-memory tables "
                "(another process rebuilds or journals them)."
            )
    try:
        yield
    finally:
        with wrapper.cursor() as cursor:
            cursor.execute(wrapper.memdb_dialect.unlock())


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
