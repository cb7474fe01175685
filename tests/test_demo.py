"""The README's demo command works as written."""

from __future__ import annotations

import os
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
