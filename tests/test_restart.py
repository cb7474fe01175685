"""What one process committed, the next process restores: real processes, real restarts."""

from __future__ import annotations

import json
import signal
import zlib

import pytest

from tests.processes import KILLED, SETTINGS, Scratch

pytestmark = pytest.mark.processes
# A scratch default database per test (see tests/processes.py).


def _labels_with_rows(dump: dict[str, list[object]]) -> set[str]:
    return {label for label, rows in dump.items() if rows}


def _one_snapshot_per_table(database: Scratch, dump: dict[str, list[object]]) -> None:
    """Exactly one snapshot row for each non-empty table, none for empty ones."""
    snapshots = [s.modelname for s in database.stored() if s.kind == "snapshot"]
    assert sorted(snapshots) == sorted(label.split(".")[1] for label in _labels_with_rows(dump))


@pytest.mark.parametrize("settings", SETTINGS)
def test_every_write_path_survives_a_restart(scratch: Scratch, settings: str) -> None:
    written = scratch.run("write-paths", settings=settings)["expected"]
    restored = scratch.dump(settings=settings)

    assert restored == written
    # Each write path left its mark (the comparison above is not of empty tables).
    texts = {row["text"] for row in written["tests.Persistent"]}
    assert {"saved", "created, then saved", "queryset updated"} <= texts and "deleted" not in texts
    assert any(text.startswith("bulk updated") for text in texts)
    assert written["tests.Keyed"] == [{"key": "a", "value": 3}, {"key": "c", "value": 2}]
    assert [row["name"] for row in written["tests.Parent"]] == ["kept"]
    assert {row["parent_id"] for row in written["tests.Child"]} == {written["tests.Parent"][0]["id"]}
    assert len(written["tests.Tagged_tags"]) == 3
    assert sorted(row["number"] for row in written["tests.Other"]) == [8, 9]
    assert len(written["tests.Rich"]) == 3 and len(written["tests.Uuided"]) == 2
    _one_snapshot_per_table(scratch, written)


def test_sigkill_after_the_writes_returned_loses_nothing(scratch: Scratch) -> None:
    # Policy 'commit': a write call returns once its journal row is committed.
    child = scratch.start("write-paths")
    written = child.wait_for("expected")
    assert child.send(signal.SIGKILL).returncode == KILLED

    assert scratch.dump() == written


def test_rolled_back_writes_are_never_persisted(scratch: Scratch) -> None:
    written = scratch.run("rollback")["expected"]

    assert scratch.dump() == written
    assert [row["text"] for row in written["tests.Persistent"]] == ["committed", "kept around a savepoint"]
    assert written["tests.Other"] == [{"id": 1, "number": 1}]
    assert written["tests.Parent"] == []
    blobs = b"".join(s.data for s in scratch.stored())
    assert b"rolled back" not in blobs
    assert b"666" not in blobs and b"667" not in blobs and b"668" not in blobs
    assert not scratch.stored_for("Parent")


def test_an_emptied_table_removes_only_its_own_stored_rows(scratch: Scratch) -> None:
    scratch.run("fill")
    other_before = scratch.stored_for("Other")
    assert scratch.stored_for("Persistent", "journal") and scratch.stored_for("Other", "journal")

    emptied = scratch.run("empty-persistent")["expected"]

    assert emptied["tests.Persistent"] == [] and len(emptied["tests.Other"]) == 3
    assert scratch.stored_for("Persistent") == []
    assert scratch.stored_for("Other") == other_before
    assert scratch.dump() == emptied


def test_two_persistent_tables_are_stored_independently(scratch: Scratch) -> None:
    scratch.run("fill")
    persistent_before = scratch.stored_for("Persistent")

    touched = scratch.run("touch-other")["expected"]

    assert scratch.stored_for("Persistent") == persistent_before
    assert scratch.stored_for("Other", "journal")
    assert sorted(row["number"] for row in touched["tests.Other"]) == [2, 11, 99]
    assert scratch.dump() == touched


def test_zlib_processor_round_trip(scratch: Scratch) -> None:
    written = scratch.run("fill", "--zlib")["expected"]

    stored = scratch.stored()
    assert {(s.modelname, s.kind) for s in stored} == {
        ("Persistent", "snapshot"), ("Persistent", "journal"), ("Other", "snapshot"), ("Other", "journal")
    }
    for entry in stored:
        assert entry.codec == "tests.processors_zlib.compress"
        items = json.loads(zlib.decompress(entry.data))
        assert isinstance(items, list) and items
        assert {item["model"] for item in items} == {f"tests.{entry.modelname.lower()}"}
    snapshot = scratch.stored_for("Persistent", "snapshot")[0]
    assert len(snapshot.data) < len(zlib.decompress(snapshot.data)) / 4
    assert scratch.dump("--zlib") == written


def test_restore_without_the_decoding_processor_fails_clearly_and_keeps_the_rows(scratch: Scratch) -> None:
    written = scratch.run("fill", "--zlib")["expected"]
    stored = scratch.stored()

    result = scratch.run("dump")

    errors = result["errors"]
    assert sorted(errors) == ["tests.Other", "tests.Persistent"]
    for label, message in errors.items():
        assert label in message
        assert "tests.processors_zlib.compress" in message
        assert "kept" in message
    assert scratch.stored() == stored
    # Once the processor is connected again, nothing was lost.
    assert scratch.dump("--zlib") == written


def test_many_restarts_in_a_row_keep_every_row(scratch: Scratch) -> None:
    previous = None
    for n in range(1, 7):
        result = scratch.run("append", "--tag", str(n))
        if previous is not None:
            assert result["before"] == previous, f"restart {n}"
        previous = result["expected"]
    assert previous is not None
    assert scratch.dump() == previous
    texts = [row["text"] for row in previous["tests.Persistent"]]
    assert texts == [f"restart {n}, seen by {n + 1}" for n in range(1, 6)] + ["restart 6"]
    assert len(previous["tests.Tagged_tags"]) == 6


def test_rich_field_values_are_equal_after_restart(scratch: Scratch) -> None:
    written = scratch.run("rich")["expected"]

    restored = scratch.dump()

    assert restored["tests.Rich"] == written["tests.Rich"]
    first, empty, last = written["tests.Rich"]
    assert first["when"] == {"datetime": "2024-02-29 23:59:59.123457+00:00"}
    assert first["amount"] == {"Decimal": "12.3400"}
    assert first["duration"] == {"timedelta": [-1, 0, 1]}
    assert first["blob"] == {"bytes": bytes(range(256)).hex()}
    assert first["payload"] == {"json": {"a": [1, 2.5, None, True, "ü"], "nested": {"empty": {}, "list": []}}}
    assert first["big"] == -(2**63) and first["floating"] == 0.1 and first["maybe"] is None
    assert last["clock"] == {"time": "23:59:59.999999"} and last["floating"] == 1e300
    assert last["payload"] == "a JSON string" and last["blob"] == {"bytes": ""}
    assert empty["when"] is None and empty["blob"] is None


def test_compaction_keeps_one_snapshot_row_per_table(scratch: Scratch) -> None:
    minimum = 5
    written = scratch.run("churn", "--compact-min-rows", str(minimum))["expected"]

    for model in ("Persistent", "Other"):
        (snapshot,) = scratch.stored_for(model, "snapshot")
        journal = scratch.stored_for(model, "journal")
        assert snapshot.rows is not None and snapshot.rows > 1  # compacted at least once
        assert sum(entry.rows or 0 for entry in journal) <= max(minimum, snapshot.rows)
    _one_snapshot_per_table(scratch, written)

    # Restored, then compacted on request: the snapshot alone holds the table.
    assert scratch.run("compact")["expected"] == written
    for model in ("Persistent", "Other"):
        (snapshot,) = scratch.stored_for(model, "snapshot")
        assert scratch.stored_for(model, "journal") == []
        assert snapshot.rows == len(written[f"tests.{model}"])
    assert scratch.dump() == written
