"""Where a connection stands between transactions, as django-memdb needs to know it."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper


def user_in_atomic(connection: BaseDatabaseWrapper) -> bool:
    """True inside a transaction the project opened.

    The atomic blocks of Django's TestCase do not count, as for
    ``atomic(durable=True)``: what a test writes outside its own blocks is
    committed as far as the test can tell.
    """
    if connection.connection is None:
        return False
    if connection.in_atomic_block:
        return not all(getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)
    return not connection.get_autocommit()
