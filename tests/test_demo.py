"""The README's demo command works as written."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.processes
def test_demo_shows_a_table_surviving_a_restart(tmp_path: Path) -> None:
    env = {**os.environ, "MEMDB_TEST_DATABASE": "sqlite", "MEMDB_TEST_DB_NAME": str(tmp_path / "demo.sqlite3")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    for _ in range(2):  # twice: the demo starts from an empty table each time
        result = subprocess.run(
            [sys.executable, "manage.py", "demo"], cwd=REPO, env=env,
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "restored 4 persistent rows" in result.stdout
        assert "ephemeral rows: 0" in result.stdout


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.processes
def test_memdb_demo_runs_in_a_fresh_project(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEMDB_", "DJANGO_"))}
    created = _run(["-m", "django", "startproject", "mysite", str(tmp_path)], tmp_path, env)
    assert created.returncode == 0, created.stderr
    settings = tmp_path / "mysite" / "settings.py"
    with settings.open("a") as file:
        file.write("\nimport django_integrator\ndjango_integrator.add_application('django_memdb')\n")

    missing = _run(["manage.py", "memdb_demo"], tmp_path, env)
    assert missing.returncode == 1
    assert "add 'django_memdb.demo' to INSTALLED_APPS" in missing.stderr

    with settings.open("a") as file:
        file.write("INSTALLED_APPS.append('django_memdb.demo')\n")
    assert _run(["manage.py", "migrate"], tmp_path, env).returncode == 0
    for run in range(2):  # the second run finds what the first stored
        result = _run(["manage.py", "memdb_demo"], tmp_path, env)
        assert result.returncode == 0, result.stderr
        assert f"{4 * run} rows restored from earlier runs; starting from an empty table" in result.stdout
        assert f"Default database: django.db.backends.sqlite3 {tmp_path / 'db.sqlite3'}" in result.stdout
        assert "in-memory tables start as stored: 0 rows" in result.stdout
        assert "restored 4 persistent rows: ['written by one process', 'row 0', 'row 1', 'row 2']" in result.stdout
        assert "ephemeral rows: 0" in result.stdout
    stored = sqlite3.connect(tmp_path / "db.sqlite3").execute(
        "SELECT application, modelname FROM django_memdb_persistentstorage"
    ).fetchall()
    assert stored == [("memdb_demo", "Note")]  # the data survived the runs
