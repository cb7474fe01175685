"""Data migrations (RunPython, RunSQL) of apps with in-memory models run where their tables are.

tests.fk_app has only in-memory models: its unhinted seed (migration 0004)
runs on the in-memory alias, at the first use of every fresh in-memory
database. tests.mixed_app has both kinds: its data migrations run on the
default database unless ``hints={"model_name": ...}`` names an in-memory model.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from django.db import DEFAULT_DB_ALIAS, router
from django.db.migrations.loader import MigrationLoader

from tests.processes import KILLED, Scratch

MEMORY = "django_memdb"


@pytest.mark.parametrize(
    ("app_label", "model_name", "on_memory", "on_default"),
    [
        ("fk_app", None, True, False),  # every model in memory: the app decides
        ("fk_app", "genre", True, False),
        ("mixed_app", None, False, True),  # both kinds: Django's default, unless hinted
        ("mixed_app", "colour", True, False),
        ("mixed_app", "Colour", True, False),  # as makemigrations names models
        ("mixed_app", "palette", False, True),
        ("mixed_app", "deleted_since", False, True),  # an unknown model: decided by its app
        ("fk_app", "deleted_since", True, False),
        ("auth", None, False, True),
        ("no_such_app", None, False, True),
    ],
)
def test_operations_without_a_model_are_routed_by_their_hints_or_their_app(
    app_label: str, model_name: str | None, on_memory: bool, on_default: bool
) -> None:
    hints = {} if model_name is None else {"model_name": model_name}
    assert router.allow_migrate(MEMORY, app_label, **hints) is on_memory
    assert router.allow_migrate(DEFAULT_DB_ALIAS, app_label, **hints) is on_default


def test_historical_models_are_routed_as_the_current_ones() -> None:
    """Inside a RunPython on any alias, the manager without ``using()`` writes
    an in-memory model to the in-memory alias (what README says to avoid)."""
    state = MigrationLoader(None, ignore_no_migrations=True).project_state(("mixed_app", "0002_seed"))
    colour = state.apps.get_model("mixed_app", "Colour")
    palette = state.apps.get_model("mixed_app", "Palette")
    assert colour.__module__ == "__fake__"
    assert router.db_for_write(colour) == MEMORY
    assert router.db_for_write(palette) == DEFAULT_DB_ALIAS


@pytest.mark.processes
def test_migrate_on_the_default_database_runs_only_what_belongs_there(scratch: Scratch) -> None:
    # The scratch database is a copy of one that ``manage.py migrate`` set up.
    shown = scratch.manage("showmigrations", "fk_app", "mixed_app").stdout
    assert "[X] 0004_genres" in shown and "[X] 0002_seed" in shown
    connection = scratch._connect()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT name FROM mixed_app_palette ORDER BY id")
        palettes = [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()
    assert palettes == ["hinted palette seed on default", "unhinted seed on default"]
    assert scratch.stored() == []  # the in-memory database was not started, nothing stored


@pytest.mark.processes
@pytest.mark.parametrize("mode", ["process", "host"])
def test_first_use_in_a_fresh_process_seeds_the_in_memory_tables(
    scratch: Scratch, tmp_path: Path, mode: str
) -> None:
    env = {"MEMDB_TEST_MODE": mode, "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path)}
    first = scratch.start("seeded", "--tag", "1", env=env)
    assert first.wait_for("genres") == ["novel", "essay", "poetry"]  # unhinted, all-in-memory app
    assert first.wait_for("colours") == ["red", "green", "blue"]  # hinted, mixed app
    # The mixed app's other data migrations ran on the default database, not again here.
    assert first.wait_for("palettes") == ["hinted palette seed on default", "unhinted seed on default"]
    first.send(signal.SIGKILL).check(KILLED)
    again = scratch.run("seeded")  # a new process: seeded anew, the extra row is gone
    assert again["genres"] == ["novel", "essay", "poetry"]
    assert again["colours"] == ["red", "green", "blue"]


SEEDED = "tests.settings_seeded"
SEED = [[1, "a"], [2, "b"], [3, "c"]]


def _stored_grades(scratch: Scratch) -> list[list[object]]:
    return scratch.run("stored-grades", settings=SEEDED)["stored"]


@pytest.mark.processes
@pytest.mark.parametrize("mode", ["process", "host"])
def test_the_seed_of_a_persistent_table_is_stored_at_the_first_start(
    scratch: Scratch, tmp_path: Path, mode: str
) -> None:
    env = {"MEMDB_TEST_MODE": mode, "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path)}
    first = scratch.start("seeded", settings=SEEDED, env=env)
    assert first.wait_for("grades") == SEED
    assert _stored_grades(scratch) == SEED  # while it runs: no exit flush needed
    if mode == "host":  # a second process reuses the shared file: nothing recorded again
        second = scratch.start("seeded", settings=SEEDED, env=env)
        assert second.wait_for("grades") == SEED
        second.send(signal.SIGKILL).check(KILLED)
    first.send(signal.SIGKILL).check(KILLED)
    assert _stored_grades(scratch) == SEED
    assert [s.kind for s in scratch.stored_for("Grade")] == ["snapshot"]  # stored once
    assert "no difference" in scratch.manage("memdb_verify", settings=SEEDED).stdout


@pytest.mark.processes
def test_memdb_spool_rewrite_works_with_a_seeded_persistent_table(scratch: Scratch) -> None:
    result = scratch.run("rewrite", settings=SEEDED)
    assert "refused" not in result, result.describe()
    assert _stored_grades(scratch) == SEED


@pytest.mark.processes
def test_a_seeded_persistent_table_keeps_its_changes_without_duplicates(scratch: Scratch) -> None:
    first = scratch.start("seeded", "--tag", "1", settings=SEEDED)
    assert first.wait_for("grades") == SEED
    first.send(signal.SIGKILL).check(KILLED)
    expected = [[1, "a"], [2, "b"], [3, "c, renamed"], [4, "d"]]
    assert _stored_grades(scratch) == expected
    entries = len(scratch.stored_for("Grade"))
    for _ in range(2):  # seeded at each start, the stored rows win by primary key
        again = scratch.run("seeded", settings=SEEDED)
        assert again["grades"] == expected
        assert _stored_grades(scratch) == expected
    # Every seeded key was stored: later starts record nothing, so journal nothing.
    assert len(scratch.stored_for("Grade")) == entries
    assert "no difference" in scratch.manage("memdb_verify", settings=SEEDED).stdout


@pytest.mark.processes
def test_a_seeded_row_deleted_at_run_time_is_seeded_and_stored_again(scratch: Scratch) -> None:
    scratch.run("seeded", "--tag", "delete", settings=SEEDED)
    assert _stored_grades(scratch) == SEED[1:]
    again = scratch.run("seeded", settings=SEEDED)
    assert again["grades"] == SEED
    assert _stored_grades(scratch) == SEED
