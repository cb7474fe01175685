"""Django models whose tables live in memory, optionally persisted to the default database."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("django-memdb")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"
