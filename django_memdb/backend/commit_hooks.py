"""When a connection's changes count as committed: mixed into both engines of the alias."""

from __future__ import annotations

import sys
from typing import Any

from .. import identity
from ..transactions import testcase_blocks_only


class _AtomicBlocks(list):  # type: ignore[type-arg]
    """``atomic_blocks`` that notices when a user's block returns to a TestCase's.

    Django's TestCase wraps every test in atomic blocks that never commit. As
    Django does for ``atomic(durable=True)``, a block opened by the test itself
    counts as committed when it exits back to the TestCase's blocks.
    """

    def __init__(self, wrapper: CommitHooks, blocks: Any = ()) -> None:
        super().__init__(blocks)
        self.wrapper = wrapper

    def pop(self, *args: Any) -> Any:
        block = super().pop(*args)
        if (
            self
            and not getattr(block, "_from_testcase", False)
            and testcase_blocks_only(self)
            and sys.exc_info()[0] is None
        ):
            self.wrapper.memdb_changes_committed()
        return block


class CommitHooks:
    """Flushes when a connection's changes count as committed; mixed into both engines of the alias.

    Each engine says whether changes are pending (``memdb_pending``), when
    they count as committed (``memdb_effectively_committed``) and how they
    are journaled (``memdb_changes_committed``).
    """

    memdb_hooked = False
    in_atomic_block: bool
    needs_rollback: bool

    @property
    def atomic_blocks(self) -> _AtomicBlocks:
        return self._memdb_atomic_blocks

    @atomic_blocks.setter
    def atomic_blocks(self, value: Any) -> None:
        self._memdb_atomic_blocks = _AtomicBlocks(self, value)

    def memdb_pending(self) -> bool:
        raise NotImplementedError

    def memdb_effectively_committed(self) -> bool:
        raise NotImplementedError

    def memdb_changes_committed(self) -> None:
        raise NotImplementedError

    def memdb_in_testcase_blocks_only(self) -> bool:
        """Inside a TestCase's blocks only: as for ``atomic(durable=True)``, that counts as committed."""
        return (
            self.in_atomic_block
            and not self.needs_rollback
            and bool(self.atomic_blocks)
            and testcase_blocks_only(self.atomic_blocks)
        )

    def memdb_schedule_flush(self) -> None:
        if self.memdb_effectively_committed():
            self.memdb_changes_committed()
        elif self.in_atomic_block and not self.memdb_hooked:
            self.memdb_hook_commit()

    def memdb_hook_commit(self) -> None:
        self.memdb_hooked = True
        self.on_commit(self.memdb_changes_committed)  # type: ignore[attr-defined]

    def _savepoint_rollback(self, sid: str) -> None:
        super()._savepoint_rollback(sid)  # type: ignore[misc]
        identity.rolled_back(self.alias, savepoint=True)  # type: ignore[attr-defined]
        # Django drops on_commit callbacks registered inside the savepoint;
        # changes made before it may still be pending.
        self.memdb_hooked = False
        if self.memdb_pending() and self.in_atomic_block:
            self.memdb_hook_commit()
