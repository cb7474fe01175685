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


def _host(directory: Path) -> dict[str, str]:
    return {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(directory)}


def _tables(status: dict) -> dict[str, dict]:
    return {table["model"]: table for table in status["tables"]}


def test_host_mode_every_process_refuses_a_table_the_first_one_could_not_restore(
    scratch: Scratch, tmp_path: Path
) -> None:
    written = scratch.run("fill")["expected"]
    stored = _corrupt_persistent(scratch)
    other = sorted(row["number"] for row in written["tests.Other"])

    first = scratch.start("blocked", env=_host(tmp_path))  # restores the host's file, and fails
    joined = scratch.run("blocked", env=_host(tmp_path))  # joins the file while the first one runs

    for result in (first.finish().check(), joined):
        _assert_blocked(result["outcomes"], other)
        assert "tests.Persistent" in _tables(result["status"])["tests.Persistent"]["restore_error"]
        assert "tests.Persistent" in result["dry-run-error"]
    assert scratch.stored() == stored


def test_host_mode_status_reports_stored_data_that_went_bad_while_the_file_was_reused(
    scratch: Scratch, tmp_path: Path
) -> None:
    written = scratch.run("fill", env=_host(tmp_path))["expected"]  # leaves the host's file behind
    stored = _corrupt_persistent(scratch)

    first = scratch.start("status", env=_host(tmp_path))  # reuses the file: nothing is decoded
    joined = scratch.run("status", env=_host(tmp_path))

    for result in (first.finish().check(), joined):
        tables = _tables(result["status"])
        assert tables["tests.Persistent"]["restore_error"] is None  # memory holds it
        assert tables["tests.Persistent"]["memory_rows"] == len(written["tests.Persistent"])
        assert "Cannot restore tests.Persistent" in tables["tests.Persistent"]["stored_error"]
        assert tables["tests.Other"]["stored_error"] is None
        assert "tests.Persistent" in result["dry-run-error"]
    assert scratch.stored() == stored
