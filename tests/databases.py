"""The default database of the test project, chosen by MEMDB_TEST_DATABASE."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent

KINDS = ("sqlite", "postgresql", "mariadb")


def kind() -> str:
    value = os.environ.get("MEMDB_TEST_DATABASE", "sqlite").lower()
    if value not in KINDS:
        raise ValueError(f"MEMDB_TEST_DATABASE must be one of {KINDS}, not {value!r}")
    return value


def default_database() -> dict[str, Any]:
    """Settings of the default database; MEMDB_TEST_DB_NAME points a child process at a scratch one."""
    name = os.environ.get("MEMDB_TEST_DB_NAME")
    which = kind()
    settings = _settings(name, which)
    if "MEMDB_TEST_CONN_MAX_AGE" in os.environ:
        settings["CONN_MAX_AGE"] = int(os.environ["MEMDB_TEST_CONN_MAX_AGE"])
    return settings


def _settings(name: str | None, which: str) -> dict[str, Any]:
    if which == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name or "memdb",
            "USER": os.environ.get("MEMDB_TEST_PG_USER", "postgres"),
            "HOST": os.environ.get("MEMDB_TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MEMDB_TEST_PG_PORT", "5432"),
        }
    if which == "mariadb":
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name or "memdb",
            "USER": os.environ.get("MEMDB_TEST_MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("MEMDB_TEST_MYSQL_PASSWORD", ""),
            "HOST": os.environ.get("MEMDB_TEST_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("MEMDB_TEST_MYSQL_PORT", "3306"),
            "OPTIONS": {"charset": "utf8mb4"},
        }
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or str(BASE_DIR / "db.sqlite3")}
