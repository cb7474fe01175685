"""What runs beside the requests of a process: the interval flusher and the flush at exit."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections

from . import compaction, modes
from .backend import shared
from .conf import DURABILITY_INTERVAL, conf
from .exceptions import PersistenceError

logger = logging.getLogger("django_memdb")

_services_started: set[int] = set()
_exit_hooks_installed = False  # inherited by forked children, like the hooks
_stop = threading.Event()


def _interval_loop(database: Any) -> None:
    while not _stop.wait(conf.MEMDB_FLUSH_INTERVAL):
        if modes.started_database() is not database:
            return
        try:
            modes.current().flush(database)
        finally:
            try:
                connections.close_all()
            except DatabaseError:  # a dropped connection: gone all the same, and the thread must go on
                pass


# How long the exit flush waits for an unreachable storage database to come back.
EXIT_RETRY_SECONDS = 5.0
EXIT_RETRY_PAUSE = 0.5
# How long the exit waits for a compaction writing its snapshot (one between two slices stops at once).
COMPACTION_EXIT_SECONDS = 30.0


def _flush_at_exit(database: Any) -> None:
    """Store what is pending; an unreachable storage database gets a few seconds to come back
    (a restart or failover during a deploy), then the loss is reported plainly."""
    mode = modes.current()
    deadline = time.monotonic() + EXIT_RETRY_SECONDS
    while True:
        try:
            mode.flush(database, raise_errors=True, log=False)
            return
        except PersistenceError as exc:
            unreachable = isinstance(exc.__cause__, (OperationalError, InterfaceError))
            if not unreachable or time.monotonic() >= deadline:
                cause = exc.__cause__ if exc.__cause__ is not None and exc.__cause__ is not exc else exc
                waited = f" (retried for {EXIT_RETRY_SECONDS:g} s)" if unreachable else ""
                logger.error("django_memdb: %s", mode.not_stored(database, cause, waited))
                return
        time.sleep(EXIT_RETRY_PAUSE)


def _at_exit() -> None:
    _stop.set()
    compaction.stop(COMPACTION_EXIT_SECONDS)
    database = modes.started_database()
    if database is None:
        return
    _flush_at_exit(database)
    modes.current().at_exit(database)


def _on_sigterm(previous: Any) -> Any:
    def handler(signum: int, frame: Any) -> None:
        if callable(previous):
            previous(signum, frame)  # e.g. gunicorn's, which ends the worker normally
        elif modes.started_database() is None:
            # Nothing to flush: terminate as if this handler was never set.
            signal.signal(signum, previous)
            os.kill(os.getpid(), signum)
        else:
            # Leave through the normal exit path, which flushes (see _at_exit).
            raise SystemExit(128 + signum)

    return handler


def install_signal_handler() -> None:
    """Make SIGTERM leave through the exit path; from AppConfig.ready(), main thread.

    Installed at start-up because the first use of the in-memory database may
    come from a thread, where no handler can be set.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_IGN, None) and not getattr(previous, "django_memdb", False):
        handler = _on_sigterm(previous)
        handler.django_memdb = True
        signal.signal(signal.SIGTERM, handler)


def start(database: Any) -> None:
    """The exit flush, and the interval flusher if MEMDB_DURABILITY asks for it; once per database."""
    if id(database) in _services_started:
        return
    _services_started.add(id(database))
    global _exit_hooks_installed
    if not _exit_hooks_installed:
        _exit_hooks_installed = True
        atexit.register(_at_exit)
    if conf.MEMDB_DURABILITY == DURABILITY_INTERVAL:
        threading.Thread(
            target=_interval_loop, args=(database,), name="django_memdb-flush", daemon=True
        ).start()


def _forget_services() -> None:
    _services_started.clear()


shared.on_fork(_forget_services)
