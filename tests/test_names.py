"""Table names that hold SQL quotes or Python's ``%`` work like any other."""

from __future__ import annotations

import pytest

from tests.processes import Scratch

pytestmark = pytest.mark.processes


def test_a_table_named_with_percent_and_quotes_survives_restarts(scratch: Scratch) -> None:
    first = scratch.run("odd-name", "--tag", "1")
    assert first["before"]["tests.OddName"] == []
    written = first["expected"]["tests.OddName"]
    assert [row["text"] for row in written] == ["100% it's \"1\"", "updated 1", "bulk 1 2%s"]
    assert scratch.stored_for("OddName", "snapshot")  # compacted into a snapshot

    second = scratch.run("odd-name", "--tag", "2")
    assert second["before"]["tests.OddName"] == written  # the snapshot, restored
    assert scratch.stored_for("OddName", "journal")  # then journaled

    assert scratch.dump() == second["expected"]
    assert len(second["expected"]["tests.OddName"]) == 6
