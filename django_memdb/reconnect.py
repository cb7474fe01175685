"""Replace a database connection the server dropped, outside the request cycle.

Django replaces broken connections only in ``close_old_connections``, at the
start and end of a request. A management command, a worker or a script
never gets there: once the server drops its connection (restart, failover,
``pg_terminate_backend``), every later query fails with "the connection is
closed", even after the server is back. The persistence engine calls this
after each failure, so that its next try connects again, and tries once more at
once when the connection it started with turns out to be dead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import Error

T = TypeVar("T")


def reset_if_broken(wrapper: Any) -> bool:
    """Close ``wrapper``'s connection if an error left it unusable, so that its next use reconnects.

    Inside an atomic block the connection is left alone: Django closes it
    when the block's rollback fails, and closing it earlier would hide the
    broken transaction from the code that opened it.
    """
    if wrapper.connection is None or wrapper.in_atomic_block or not wrapper.errors_occurred:
        return False
    try:
        usable = wrapper.is_usable()
    except Error:
        usable = False
    if usable:
        wrapper.errors_occurred = False
        return False
    try:
        wrapper.close()
    except Error:
        pass  # closing a dropped connection may complain; it is forgotten all the same
    return True


def retry_if_dropped(wrapper: Any, work: Callable[[], T]) -> T:
    """``work()``, once more on a new connection if it failed on one the server dropped while idle.

    The first use after an outage would otherwise fail although the server
    is back; a second failure, on a fresh connection, is a real one.
    """
    was_open = wrapper.connection is not None
    try:
        return work()
    except Exception:
        if not (was_open and reset_if_broken(wrapper)):
            raise
    return work()
