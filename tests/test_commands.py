"""The management commands: memdb_status, memdb_spool, memdb_restore, memdb_verify."""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import select
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, models

from django_memdb import capture, lifecycle
from django_memdb.exceptions import RestoreError
from django_memdb.models import PersistentJournal, PersistentStorage
from django_memdb.tools.restore import restore
from tests.models import Child, Ephemeral, Keyed, Other, Parent, Persistent
from tests.storage_view import assert_persisted, in_memory

pytestmark = pytest.mark.django_db(databases=["default", "django_memdb"])


@pytest.fixture(autouse=True)
def _commit_durability(settings: Any) -> Iterator[None]:
    settings.MEMDB_DURABILITY = "commit"
    yield
    lifecycle.current_database().failed.clear()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def run_failing(*args: str) -> tuple[str, str]:
    """Output and error of a command that must exit non-zero."""
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(*args, stdout=out)
    return out.getvalue(), str(caught.value)


def line_of(output: str, model: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{model}:") or line.startswith(f"{model} "))


def write_behind_capture(model: type[models.Model], sql: str, params: tuple[Any, ...] = ()) -> None:
    """Change memory the way no write path does: with the capture triggers off."""
    database = lifecycle.current_database()
    with database.lock:
        capture.drop_triggers(database.connection, model)
        try:
            database.connection.execute(sql, params)
        finally:
            capture.install_triggers(database.connection, [model])


def storage_contents() -> list[tuple[Any, ...]]:
    snapshots = [
        (r.id, r.application, r.modelname, r.rows, bytes(r.data)) for r in PersistentStorage.objects.order_by("id")
    ]
    journal = [(r.id, r.modelname, r.rows, bytes(r.data)) for r in PersistentJournal.objects.order_by("id")]
    return [*snapshots, *journal]


def set_snapshot(model: type[models.Model], items: list[dict[str, Any]]) -> None:
    PersistentStorage.objects.filter(modelname=model.__name__).update(data=json.dumps(items).encode())


def three_persistent() -> list[int]:
    """Three rows: a snapshot of the first and two journal entries."""
    return [Persistent.objects.create(text=text).pk for text in ("a", "b", "c")]


def corrupt_and_fail_restore() -> None:
    PersistentStorage.objects.filter(modelname="Persistent").update(data=b"\x00 not json")
    with pytest.raises(RestoreError):
        restore(list(PersistentStorage.objects.filter(modelname="Persistent")))


# memdb_status


def test_status_table_lists_every_in_memory_table() -> None:
    three_persistent()
    Ephemeral.objects.create(text="x")
    output = run("memdb_status")
    assert "Mode: process" in output
    assert "Durability: commit" in output
    assert "storage database: default" in output
    assert "Flush error: none" in output
    assert "Writer: this process, lease until " in output
    header = next(line for line in output.splitlines() if line.startswith("MODEL"))
    assert header.split() == ["MODEL", "PERSISTED", "MEMORY", "SNAPSHOT", "SIZE", "AGE", "JOURNAL", "PENDING", "STATE"]
    cells = line_of(output, "tests.Persistent").split("  ")
    cells = [cell.strip() for cell in cells if cell.strip()]
    assert cells[:4] == ["tests.Persistent", "yes", "3", "1"]
    assert cells[4].endswith(" B") and cells[5].endswith("s")
    assert cells[6:] == ["2 (2 rows)", "0", "ok"]
    other = [c.strip() for c in line_of(output, "tests.Other").split("  ") if c.strip()]
    assert other == ["tests.Other", "yes", "0", "-", "-", "-", "0", "0", "ok"]
    ephemeral = [c.strip() for c in line_of(output, "tests.Ephemeral").split("  ") if c.strip()]
    assert ephemeral == ["tests.Ephemeral", "no", "1", "-", "-", "-", "-", "0", "ok"]
    assert "Problems:" not in output


def test_status_json() -> None:
    three_persistent()
    Ephemeral.objects.create(text="x")
    report = json.loads(run("memdb_status", "--json"))
    assert report["mode"] == "process"
    assert report["durability"] == "commit"
    assert (report["memory_database"], report["storage_database"]) == ("django_memdb", "default")
    assert report["flush_error"] is None and report["storage_error"] is None and report["orphans"] == []
    writer = report["writer"]
    assert (writer["this_process"], writer["active"], writer["pid"]) == (True, True, os.getpid())
    assert datetime.datetime.fromisoformat(writer["expires"]) > datetime.datetime.now(datetime.timezone.utc)
    tables = {table["model"]: table for table in report["tables"]}
    assert {"tests.Persistent", "tests.Ephemeral", "tests.Tagged_tags", "tests.CounterMemory"} <= set(tables)
    persistent = tables["tests.Persistent"]
    snapshot = PersistentStorage.objects.get(modelname="Persistent")
    assert persistent["persistent"] is True
    assert persistent["table"] == "tests_persistent"
    assert persistent["memory_rows"] == 3
    assert persistent["snapshot_rows"] == 1 and persistent["snapshot_count"] == 1
    assert persistent["snapshot_bytes"] == len(bytes(snapshot.data))
    assert datetime.datetime.fromisoformat(persistent["snapshot_inserted"]) == snapshot.inserted
    assert 0 <= persistent["snapshot_age_seconds"] < 60
    assert (persistent["journal_entries"], persistent["journal_rows"]) == (2, 2)
    assert persistent["pending"] == 0 and persistent["restore_error"] is None
    ephemeral = tables["tests.Ephemeral"]
    assert ephemeral["persistent"] is False and ephemeral["memory_rows"] == 1
    assert ephemeral["snapshot_rows"] is None and ephemeral["journal_entries"] == 0
    assert tables["tests.Other"]["memory_rows"] == 0 and tables["tests.Other"]["snapshot_rows"] is None


def test_status_and_verify_count_pending_changes(settings: Any) -> None:
    settings.MEMDB_DURABILITY = "shutdown"
    Persistent.objects.create(text="a")
    Persistent.objects.create(text="b")
    tables = {t["model"]: t for t in json.loads(run("memdb_status", "--json"))["tables"]}
    assert tables["tests.Persistent"]["pending"] == 2
    assert tables["tests.Persistent"]["snapshot_rows"] is None
    output, error = run_failing("memdb_verify", "--model", "tests.Persistent")
    assert "2 changed rows not flushed yet (use --flush)" in output
    assert "tests.Persistent" in error
    output = run("memdb_verify", "--model", "tests.Persistent", "--flush")
    assert "tests.Persistent: 2 rows, memory matches storage" in output
    assert json.loads(run("memdb_status", "--json"))["tables"][0]["pending"] == 0


def test_status_shows_restore_failures_and_orphans() -> None:
    Persistent.objects.create(text="a")
    corrupt_and_fail_restore()
    PersistentStorage.objects.create(application="gone", modelname="Missing", codec="", data=b"[]")
    output = run("memdb_status")
    assert line_of(output, "tests.Persistent").rstrip().endswith("RESTORE FAILED")
    problems = output.split("Problems:")[1]
    assert "- tests.Persistent: Cannot restore tests.Persistent" in problems
    assert "memdb_restore --model tests.Persistent" in problems
    assert "Stored rows of gone.Missing belong to no persistent model" in problems
    report = json.loads(run("memdb_status", "--json"))
    assert report["orphans"] == ["gone.Missing"]
    failed = next(t for t in report["tables"] if t["model"] == "tests.Persistent")
    assert "Cannot restore tests.Persistent" in failed["restore_error"]


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
def test_commands_say_run_migrate_when_storage_tables_are_missing() -> None:
    Persistent.objects.create(text="a")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE django_memdb_persistentjournal RENAME TO memdb_moved")
    try:
        output = run("memdb_status")
        assert line_of(output, "tests.Persistent").split()[:3] == ["tests.Persistent", "yes", "1"]
        assert "Run `python manage.py migrate`" in output.split("Problems:")[1]
        assert "Run `python manage.py migrate`" in json.loads(run("memdb_status", "--json"))["storage_error"]
        for command in (["memdb_verify"], ["memdb_spool"], ["memdb_restore"], ["memdb_restore", "--dry-run"]):
            _output, error = run_failing(*command)
            assert "are missing in the 'default' database. Run `python manage.py migrate`" in error
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE memdb_moved RENAME TO django_memdb_persistentjournal")
    assert in_memory(Persistent)  # nothing was touched


# memdb_spool


def test_spool_compacts_every_table() -> None:
    three_persistent()
    Other.objects.create(number=1)
    Other.objects.create(number=2)
    assert PersistentJournal.objects.count() == 3
    output = run("memdb_spool")
    assert output.splitlines()[0] == "Flushed 0 changed rows."
    assert "tests.Persistent: snapshot of 3 rows (" in output
    assert "tests.Other: snapshot of 2 rows (" in output
    assert "tests.Keyed: empty in memory, no stored rows" in output
    assert not PersistentJournal.objects.exists()
    assert PersistentStorage.objects.get(modelname="Persistent").rows == 3
    assert_persisted(Persistent, Other)


def test_spool_model_compacts_only_that_table() -> None:
    three_persistent()
    Keyed.objects.create(key="a")
    Keyed.objects.create(key="b")
    output = run("memdb_spool", "--model", "tests.Persistent")
    assert "tests.Persistent: snapshot of 3 rows" in output
    assert "tests.Keyed" not in output
    assert not PersistentJournal.objects.filter(modelname="Persistent").exists()
    assert PersistentJournal.objects.filter(modelname="Keyed").count() == 1
    output = run("memdb_spool", "--model", "tests.Keyed", "--model", "tests.Persistent")
    assert "tests.Keyed: snapshot of 2 rows" in output and "tests.Persistent" in output
    assert_persisted(Persistent, Keyed)


def test_spool_flushes_pending_changes_first(settings: Any) -> None:
    settings.MEMDB_DURABILITY = "shutdown"
    Persistent.objects.create(text="a")
    Persistent.objects.create(text="b")
    assert not PersistentStorage.objects.exists()
    output = run("memdb_spool", "--model", "tests.Persistent")
    assert output.splitlines()[0] == "Flushed 2 changed rows."
    assert PersistentStorage.objects.get(modelname="Persistent").rows == 2
    assert_persisted(Persistent)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("tests.Nope", "Unknown model 'tests.Nope'"),
        ("Persistent", "Unknown model 'Persistent': give it as app_label.ModelName"),
        ("tests.Ephemeral", "tests.Ephemeral is not a persistent in-memory model"),
        ("tests.Plain", "tests.Plain is not a persistent in-memory model"),
    ],
)
def test_commands_refuse_a_wrong_model(label: str, message: str) -> None:
    for command in ("memdb_spool", "memdb_restore", "memdb_verify"):
        _output, error = run_failing(command, "--model", label)
        assert message in error


def test_spool_skips_a_table_that_failed_to_restore() -> None:
    Persistent.objects.create(text="a")
    Other.objects.create(number=1)
    corrupt_and_fail_restore()
    output, error = run_failing("memdb_spool")
    assert "tests.Other: snapshot of 1 row (" in output
    assert "tests.Persistent: skipped" in error
    assert "memdb_restore --model tests.Persistent" in error
    assert bytes(PersistentStorage.objects.get(modelname="Persistent").data) == b"\x00 not json"


# memdb_verify


def test_verify_reports_no_difference() -> None:
    three_persistent()
    Parent.objects.create(name="p")
    output = run("memdb_verify")
    assert "tests.Persistent: 3 rows, memory matches storage" in output
    assert "tests.Parent: 1 row, memory matches storage" in output
    assert output.rstrip().endswith("tables verified: no difference.")
    assert "tests.Ephemeral" not in output  # not persisted: nothing to compare
    report = json.loads(run("memdb_verify", "--json"))
    assert report["ok"] is True and all(table["ok"] for table in report["tables"])


def test_verify_finds_a_changed_snapshot() -> None:
    first, second, _third = three_persistent()
    set_snapshot(Persistent, [{"model": "tests.persistent", "pk": first, "fields": {"text": "changed"}}])
    output, error = run_failing("memdb_verify")
    assert f"tests.Persistent: DIFFERS (3 in memory, 3 stored): 1 row different (pk {first} [text])" in output
    assert "tests.Other: 0 rows, memory matches storage" in output
    assert "Memory and storage differ for tests.Persistent." in error
    assert "memdb_restore --model" in error and "memdb_spool --model" in error
    _output, _error = run_failing("memdb_verify", "--json")
    report = json.loads(_output)
    assert report["ok"] is False
    table = next(t for t in report["tables"] if t["model"] == "tests.Persistent")
    assert (table["different"], table["fields"]) == ([first], {str(first): ["text"]})
    assert table["missing"] == table["extra"] == []


def test_verify_finds_a_deleted_journal_row() -> None:
    _first, second, _third = three_persistent()
    PersistentJournal.objects.order_by("id").first().delete()  # the entry of the second row
    output, _error = run_failing("memdb_verify", "--model", "tests.Persistent")
    assert f"1 row in memory but not stored (pk {second})" in output


def test_verify_finds_rows_missing_in_memory() -> None:
    pks = three_persistent()
    write_behind_capture(Persistent, "DELETE FROM tests_persistent WHERE id <> ?", (pks[0],))
    output, _error = run_failing("memdb_verify", "--model", "tests.Persistent")
    assert f"2 rows stored but missing in memory (pk {pks[1]}, {pks[2]})" in output


def test_verify_lists_only_the_first_few() -> None:
    Persistent.objects.bulk_create([Persistent(text=str(i)) for i in range(8)])
    write_behind_capture(Persistent, "DELETE FROM tests_persistent")
    output, _error = run_failing("memdb_verify", "--model", "tests.Persistent")
    assert "8 rows stored but missing in memory (pk " in output and ", ...)" in output


def test_verify_finds_rows_of_no_model() -> None:
    PersistentStorage.objects.create(application="gone", modelname="Missing", codec="", data=b"[]")
    output, error = run_failing("memdb_verify")
    assert "Stored rows of gone.Missing belong to no persistent model" in output
    assert "gone.Missing" in error
    run("memdb_verify", "--model", "tests.Persistent")  # only what was asked


def test_verify_reports_a_blob_that_does_not_decode() -> None:
    Persistent.objects.create(text="a")
    PersistentStorage.objects.filter(modelname="Persistent").update(data=b"\x00 not json")
    output, _error = run_failing("memdb_verify", "--model", "tests.Persistent")
    assert "tests.Persistent: DIFFERS" in output and "Cannot restore tests.Persistent" in output


# memdb_restore


@pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)
def test_restore_brings_back_rows_deleted_in_memory() -> None:
    pks = three_persistent()
    parent = Parent.objects.create(name="p")
    Child.objects.create(parent=parent, name="c")
    before = storage_contents()
    write_behind_capture(Persistent, "DELETE FROM tests_persistent WHERE id = ?", (pks[1],))
    write_behind_capture(Persistent, "UPDATE tests_persistent SET text = 'drift' WHERE id = ?", (pks[0],))
    write_behind_capture(Child, "DELETE FROM tests_child")
    write_behind_capture(Parent, "DELETE FROM tests_parent")
    run_failing("memdb_verify")
    # The child table first: foreign keys are checked once all tables are loaded.
    output = run("memdb_restore", "--model", "tests.Child", "--model", "tests.Persistent", "--model", "tests.Parent")
    assert (
        "tests.Persistent: restored 3 rows (snapshot of 1 row + 2 journal entries of 2 rows); memory held 2"
        in output
    )
    assert "tests.Parent: restored 1 row (snapshot of 1 row); memory held 0" in output
    assert output.index("tests.Child: restored 1 row") < output.index("tests.Parent")
    assert list(Persistent.objects.order_by("id").values_list("text", flat=True)) == ["a", "b", "c"]
    assert Child.objects.get().parent.name == "p"
    assert storage_contents() == before  # a restore reads storage only
    run("memdb_verify")
    Persistent.objects.create(text="d")  # capture works again after the restore
    assert_persisted(Persistent)


def test_restore_replaces_every_table_with_storage() -> None:
    three_persistent()
    write_behind_capture(Other, "INSERT INTO tests_other (number) VALUES (7)")
    write_behind_capture(Persistent, "DELETE FROM tests_persistent")
    output = run("memdb_restore")
    assert "tests.Other: restored 0 rows (nothing stored); memory held 1" in output
    assert "tests.Persistent: restored 3 rows" in output
    assert not Other.objects.exists()
    assert Persistent.objects.count() == 3
    run("memdb_verify")


def test_dry_run_touches_nothing() -> None:
    three_persistent()
    Keyed.objects.create(key="k", value=1)
    write_behind_capture(Persistent, "DELETE FROM tests_persistent")
    before = storage_contents()
    output = run("memdb_restore", "--dry-run")
    assert (
        "tests.Persistent: storage holds 3 rows (snapshot of 1 row + 2 journal entries of 2 rows); "
        "memory holds 0" in output
    )
    assert "tests.Keyed: storage holds 1 row (snapshot of 1 row); memory holds 1" in output
    assert "tests.Other: storage holds 0 rows (nothing stored); memory holds 0" in output
    assert output.rstrip().endswith("Dry run: nothing was changed.")
    assert in_memory(Persistent) == {}
    assert storage_contents() == before


def test_dry_run_and_restore_report_a_row_that_does_not_fit() -> None:
    kept = Other.objects.create(number=1).pk
    set_snapshot(Other, [{"model": "tests.other", "pk": 5, "fields": {"number": "not a number"}}])
    before = storage_contents()
    output, error = run_failing("memdb_restore", "--dry-run", "--model", "tests.Other")
    assert "Restore would fail" in error
    assert "tests.Other: FAILED: Cannot restore tests.Other" in error
    assert "memdb_restore --model tests.Other" in error
    output, error = run_failing("memdb_restore", "--model", "tests.Other")
    assert "Restore failed; memory of those tables was left as it was" in error
    assert "tests.Other: FAILED" in error
    assert list(Other.objects.values_list("id", flat=True)) == [kept]  # usable, unchanged
    assert storage_contents() == before


def test_restore_unblocks_a_table_once_its_data_is_fixed() -> None:
    pk = Persistent.objects.create(text="a").pk
    corrupt_and_fail_restore()
    _output, error = run_failing("memdb_restore", "--dry-run", "--model", "tests.Persistent")
    assert "Cannot restore tests.Persistent" in error
    set_snapshot(Persistent, [{"model": "tests.persistent", "pk": pk, "fields": {"text": "a"}}])
    output = run("memdb_restore", "--model", "tests.Persistent")
    assert "tests.Persistent: restored 1 row" in output
    assert list(Persistent.objects.values_list("text", flat=True)) == ["a"]
    assert "RESTORE FAILED" not in run("memdb_status")


def test_restore_of_all_tables_reports_rows_of_no_model() -> None:
    Persistent.objects.create(text="a")
    PersistentStorage.objects.create(application="gone", modelname="Missing", codec="", data=b"[]")
    output, error = run_failing("memdb_restore")
    assert "tests.Persistent: restored 1 row" in output
    assert "Stored rows of gone.Missing belong to no persistent model" in error
    assert PersistentStorage.objects.filter(application="gone").exists()


# Progress


def test_progress_is_logged_when_not_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="django_memdb")
    Persistent.objects.create(text="a")
    output = run("memdb_verify", "--model", "tests.Persistent", "--model", "tests.Other")
    assert "Verifying" not in output
    assert "django_memdb: Verifying tests.Persistent (1/2)" in caplog.messages
    assert "django_memdb: Verifying tests.Other (2/2)" in caplog.messages


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_progress_is_shown_on_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="django_memdb")
    Persistent.objects.create(text="a")
    master, slave = os.openpty()
    try:
        with open(slave, "w", encoding="utf-8") as terminal:
            call_command("memdb_spool", "--model", "tests.Persistent", stdout=terminal)
        output = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # the terminal was closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
    text = output.decode()
    assert "Compacting tests.Persistent (1/1)" in text
    assert "tests.Persistent: snapshot of 1 row" in text
    assert not any("Compacting" in message for message in caplog.messages)
