"""Where a connection stands between transactions, as django-memdb needs to know it."""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper


def testcase_blocks_only(blocks: Any) -> bool:
    """True when every open atomic block is one of Django's TestCase's (also when none is)."""
    return all(getattr(block, "_from_testcase", False) for block in blocks)


def user_in_atomic(connection: BaseDatabaseWrapper) -> bool:
    """True inside a transaction the project opened.

    The atomic blocks of Django's TestCase do not count, as for
    ``atomic(durable=True)``: what a test writes outside its own blocks is
    committed as far as the test can tell.
    """
    if connection.connection is None:
        return False
    if connection.in_atomic_block:
        return not testcase_blocks_only(connection.atomic_blocks)
    return not connection.get_autocommit()
