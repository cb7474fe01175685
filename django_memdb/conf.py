"""Settings of django-memdb, read lazily with their defaults in one place."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from django.conf import settings
from django.utils.functional import empty

from . import settings as integrator_settings

DURABILITY_COMMIT = "commit"
DURABILITY_INTERVAL = "interval"
DURABILITY_SHUTDOWN = "shutdown"
DURABILITY_CHOICES = (DURABILITY_COMMIT, DURABILITY_INTERVAL, DURABILITY_SHUTDOWN)

MODE_PROCESS = "process"
MODE_HOST = "host"
MODE_CLUSTER = "cluster"
MODE_CHOICES = (MODE_PROCESS, MODE_HOST, MODE_CLUSTER)

DEFAULTS: dict[str, Any] = {
    "MEMDB_NAME": integrator_settings.MEMDB_NAME,
    "MEMDB_PROCESS_ENCODE": integrator_settings.MEMDB_PROCESS_ENCODE,
    "MEMDB_PROCESS_DECODE": integrator_settings.MEMDB_PROCESS_DECODE,
    "MEMDB_DURABILITY": DURABILITY_COMMIT,
    "MEMDB_FLUSH_INTERVAL": 1.0,
    "MEMDB_COMPACT_MIN_ROWS": 1000,
    "MEMDB_COMPACT_RATIO": 1.0,
    "MEMDB_SPOOL_DATABASE": "default",
    "MEMDB_LEASE_SECONDS": 30.0,
    "MEMDB_MODE": MODE_PROCESS,
    "MEMDB_HOST_DIRECTORY": None,
    "MEMDB_CLUSTER_DATABASE": None,
    "MEMDB_IDENTITY_FLUSH_AT_REQUEST_END": False,
    "MEMDB_EXPIRY_INTERVAL": 1.0,
}


def default_directory() -> str:
    """Where host mode keeps its files unless MEMDB_HOST_DIRECTORY says: tmpfs if there is one."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


class Settings:
    """Each property reads the project setting on access, so override_settings works."""

    def _get(self, name: str) -> Any:
        # Read from the settings object itself once it is set up: through
        # LazySettings, a setting left at its default costs an exception of
        # the lazy object's __getattr__ each time (a few are read per commit).
        wrapped = settings._wrapped  # type: ignore[misc]  # the LazySettings attribute
        if wrapped is empty:
            return getattr(settings, name, DEFAULTS[name])
        return getattr(wrapped, name, DEFAULTS[name])

    @property
    def MEMDB_NAME(self) -> str:
        return self._get("MEMDB_NAME")

    @property
    def MEMDB_PROCESS_ENCODE(self) -> str:
        return self._get("MEMDB_PROCESS_ENCODE")

    @property
    def MEMDB_PROCESS_DECODE(self) -> str:
        return self._get("MEMDB_PROCESS_DECODE")

    @property
    def MEMDB_DURABILITY(self) -> str:
        return self._get("MEMDB_DURABILITY")

    @property
    def MEMDB_FLUSH_INTERVAL(self) -> float:
        return self._get("MEMDB_FLUSH_INTERVAL")

    @property
    def MEMDB_COMPACT_MIN_ROWS(self) -> int:
        return self._get("MEMDB_COMPACT_MIN_ROWS")

    @property
    def MEMDB_COMPACT_RATIO(self) -> float:
        return self._get("MEMDB_COMPACT_RATIO")

    @property
    def MEMDB_SPOOL_DATABASE(self) -> str:
        return self._get("MEMDB_SPOOL_DATABASE")

    @property
    def MEMDB_LEASE_SECONDS(self) -> float:
        return self._get("MEMDB_LEASE_SECONDS")

    @property
    def MEMDB_MODE(self) -> str:
        return self._get("MEMDB_MODE")

    @property
    def MEMDB_HOST_DIRECTORY(self) -> str:
        return self._get("MEMDB_HOST_DIRECTORY") or default_directory()

    @property
    def MEMDB_CLUSTER_DATABASE(self) -> str:
        return self._get("MEMDB_CLUSTER_DATABASE") or self.MEMDB_SPOOL_DATABASE

    @property
    def MEMDB_IDENTITY_FLUSH_AT_REQUEST_END(self) -> bool:
        return bool(self._get("MEMDB_IDENTITY_FLUSH_AT_REQUEST_END"))

    @property
    def MEMDB_EXPIRY_INTERVAL(self) -> float:
        """Seconds between two purges by the purge thread of each process (ORM reads check before each use)."""
        return self._get("MEMDB_EXPIRY_INTERVAL")


conf = Settings()
