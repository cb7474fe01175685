"""The modes of MEMDB_MODE, one class each (base.Mode), and the one place that picks one."""

from __future__ import annotations

from typing import Any

from django.db import connections

from ..conf import conf
from .base import Mode
from .cluster import ClusterMode
from .host import HostMode
from .process import ProcessMode

_MODES: dict[str, Mode] = {mode.name: mode for mode in (ProcessMode(), HostMode(), ClusterMode())}


def current() -> Mode:
    """The mode MEMDB_MODE names now; an unknown name (check E010) runs as ``process``."""
    return _MODES.get(conf.MEMDB_MODE) or _MODES["process"]


def started_database() -> Any | None:
    """The in-memory database the alias names now, if this process started it.

    After Django's test runner put the production NAME back, the test
    database is not it: nothing may then be flushed towards production.
    """
    if conf.MEMDB_NAME not in connections.settings:
        return None
    return current().started_database()


__all__ = ["Mode", "current", "started_database"]
