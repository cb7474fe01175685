"""A process killed anywhere in a flush or compaction leaves a committed state behind.

The child commits some rows, then runs one transaction over several tables
(insert, update, delete, cascade, a table emptied) and SIGKILLs itself at a
point of the persistence engine (tests/child.py wraps the engine's function,
the package is unchanged). A fresh process then restores either all of that
transaction or none of it, never a mix, and every row committed before it.
"""

from __future__ import annotations

import pytest

from tests.processes import KILLED, Result, Scratch

pytestmark = pytest.mark.processes
# A scratch default database per test: the scratch fixture (tests/processes.py).


def _crash(database: Scratch, point: str, *options: str) -> Result:
    result = database.run("crash", "--kill-at", point, *options, returncode=KILLED)
    assert result["killed"]["point"] == point, result.describe()
    assert "survived" not in result
    before, inside = result["before"], result["inside"]
    # The interrupted transaction changed every kind of thing it could.
    assert before != inside
    texts = [row["text"] for row in inside["tests.Persistent"]]
    assert texts == ["interrupted", "committed 2", "interrupted"]
    assert inside["tests.Tag"] == [] and before["tests.Tag"] != []
    assert [row["name"] for row in inside["tests.Parent"]] == ["interrupted"]
    return result


def _restarted(database: Scratch, restored: dict[str, object]) -> None:
    """The next process sees ``restored`` and can carry on writing from there."""
    result = database.run("append", "--tag", "1")
    assert result["before"] == restored
    assert database.dump() == result["expected"]


def test_killed_between_the_in_memory_commit_and_the_flush(scratch: Scratch) -> None:
    # The transaction committed in memory but its write call never returned.
    result = _crash(scratch, "commit")

    assert scratch.dump() == result["before"]
    _restarted(scratch, result["before"])


def test_killed_after_a_journal_insert_before_the_spool_commit(scratch: Scratch) -> None:
    result = _crash(scratch, "journal")

    assert scratch.dump() == result["before"]
    assert not any(b"interrupted" in entry.data for entry in scratch.stored())
    _restarted(scratch, result["before"])


def test_killed_after_the_spool_commit(scratch: Scratch) -> None:
    # Journaled and committed, not yet acknowledged to the caller: all of it.
    result = _crash(scratch, "journal-committed")

    assert scratch.dump() == result["inside"]
    assert scratch.stored_for("Tag") == []
    _restarted(scratch, result["inside"])


def test_killed_while_writing_a_first_snapshot(scratch: Scratch) -> None:
    result = _crash(scratch, "first-snapshot")

    assert result["killed"]["model"] == "Keyed"
    assert result["inside"]["tests.Keyed"] == [{"key": "interrupted", "value": 1}]
    assert scratch.dump() == result["before"]
    assert scratch.stored_for("Keyed") == []
    assert scratch.stored_for("Tag", "snapshot")
    _restarted(scratch, result["before"])


def test_killed_mid_compaction_after_the_snapshot_update(scratch: Scratch) -> None:
    # The transaction was journaled and committed before compaction started.
    result = _crash(scratch, "compaction")

    compacted = result["killed"]["model"]
    assert scratch.dump() == result["inside"]
    # The rewritten snapshot was rolled back with its transaction: the journal is still there.
    assert len(scratch.stored_for(compacted, "snapshot")) == 1
    assert scratch.stored_for(compacted, "journal")
    _restarted(scratch, result["inside"])
