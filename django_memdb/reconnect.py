"""Replace a database connection the server dropped, outside the request cycle.

Django replaces broken connections only in ``close_old_connections``, at the
start and end of a request. A management command, a worker or a script
never gets there: once the server drops its connection (restart, failover,
``pg_terminate_backend``), every later query fails with "the connection is
closed", even after the server is back. The persistence engine calls this
after each failure, so that its next try connects again.
"""

from __future__ import annotations

from typing import Any

from django.db import Error


def reset_if_broken(wrapper: Any) -> None:
    """Close ``wrapper``'s connection if an error left it unusable, so that its next use reconnects.

    Inside an atomic block the connection is left alone: Django closes it
    when the block's rollback fails, and closing it earlier would hide the
    broken transaction from the code that opened it.
    """
    if wrapper.connection is None or wrapper.in_atomic_block or not wrapper.errors_occurred:
        return
    try:
        usable = wrapper.is_usable()
    except Error:
        usable = False
    if usable:
        wrapper.errors_occurred = False
        return
    try:
        wrapper.close()
    except Error:
        pass  # closing a dropped connection may complain; it is forgotten all the same
