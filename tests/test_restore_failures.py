"""A table whose stored data cannot be restored is refused from the first statement, in every process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.processes import Scratch

pytestmark = pytest.mark.processes

CORRUPT = b"[\n{\"model\": \"tests.persistent\", \"pk\": 1, \"fields\": {\"text\": \x00 cut"


def _corrupt_persistent(scratch: Scratch) -> list:
    snapshot = scratch.stored_for("Persistent", "snapshot")[0]
    scratch.overwrite(snapshot, CORRUPT)
    return scratch.stored()


def _assert_blocked(outcomes: dict, other: list[int]) -> None:
    for attempt in ("list", "get", "count", "create"):
        assert outcomes[attempt].get("raised") == "RestoreError", (attempt, outcomes[attempt])
        assert "tests.Persistent" in outcomes[attempt]["message"]
    assert outcomes["other"] == {"returned": other}


def test_a_failed_restore_refuses_the_first_read_of_a_fresh_process(scratch: Scratch) -> None:
    written = scratch.run("fill")["expected"]
    stored = _corrupt_persistent(scratch)

    result = scratch.run("blocked")

    _assert_blocked(result["outcomes"], sorted(row["number"] for row in written["tests.Other"]))
    tables = {table["model"]: table for table in result["status"]["tables"]}
    assert "tests.Persistent" in tables["tests.Persistent"]["restore_error"]
    assert tables["tests.Other"]["restore_error"] is None
    assert scratch.stored() == stored  # kept byte for byte
