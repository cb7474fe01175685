"""A large table compacted in a thread of its own while it changes (django_memdb/compaction.py).

The child (tests/child.py, action compact-online) makes its changes at the
compaction thread's pauses between two slices, so every kind of change falls
inside the read: rows already read and not yet read, updated and deleted, a
row deleted and inserted again with its key, a new row, the table emptied.
A fresh process must then restore every row as last written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import KILLED, Scratch

pytestmark = pytest.mark.processes

ROWS = 20_000


@pytest.mark.parametrize("mode", ["process", "host"])
def test_rows_changed_while_the_table_is_read_are_restored_as_last_written(
    scratch: Scratch, tmp_path: Path, mode: str
) -> None:
    # In host mode the compaction also takes the host's spooling lock for its watermark and its write.
    env = {"MEMDB_TEST_MODE": mode, "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path)} if mode == "host" else {}
    result = scratch.run("compact-online", env=env)

    assert result["changes"] == 7  # each fell between two slices
    snapshot = scratch.stored_for("Persistent", "snapshot")
    assert len(snapshot) == 1
    # Rewritten by the compaction (the first snapshot held the 20,000 rows of the bulk insert) ...
    assert snapshot[0].rows is not None and ROWS - 5 <= snapshot[0].rows <= ROWS + 2
    # ... which kept the journal entries written after its watermark: the changes made
    # meanwhile (the row deleted and inserted again is two of them), and counts them.
    journal = scratch.stored_for("Persistent", "journal")
    assert len(journal) == result["state"]["journal_entries"] == 8
    assert scratch.dump() == result["expected"]


def test_a_table_emptied_while_it_is_read_is_not_resurrected(scratch: Scratch) -> None:
    result = scratch.run("compact-online", "--tag", "empty")

    assert result["changes"] == 1
    assert result["expected"]["tests.Persistent"] == []
    # Its stored rows were removed when it became empty; the compaction then found
    # its snapshot gone and wrote nothing.
    assert scratch.stored_for("Persistent") == []
    assert scratch.dump() == result["expected"]


@pytest.mark.parametrize("point", ["online-slices", "online-write"])
def test_killed_during_a_compaction_in_a_thread(scratch: Scratch, point: str) -> None:
    result = scratch.run("compact-online", "--kill-at", point, returncode=KILLED)

    assert result["killed"]["point"] == point
    if point == "online-write":
        assert result["killed"]["written"] is True  # the snapshot was updated, not committed
    # Nothing of the compaction was stored: the first snapshot and every journal entry remain.
    snapshot = scratch.stored_for("Persistent", "snapshot")
    assert len(snapshot) == 1 and snapshot[0].rows == ROWS
    assert len(scratch.stored_for("Persistent", "journal")) == 9
    assert scratch.dump() == result["expected"]
