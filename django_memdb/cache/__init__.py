"""A Django cache backend on django-memdb's in-memory database; see backend.py."""

from __future__ import annotations

from .backend import MemDBCache

__all__ = ["MemDBCache"]
