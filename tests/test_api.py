"""The public API of 0.0.6, name by name, and what the project may rely on at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.db import connections, router

import django_memdb
from django_memdb import dbrouter, mixins, models, registry, signals
from django_memdb import settings as memdb_settings
from django_memdb.processors import codec_of, dotted_name
from django_memdb.tools import restore
from tests.models import Persistent, Plain

REPO = Path(__file__).resolve().parent.parent


def test_mixins() -> None:
    assert issubclass(mixins.PeristentInMemoryDB, mixins.InMemoryDB)
    assert mixins.PersistentInMemoryDB is mixins.PeristentInMemoryDB


def test_settings_module_holds_only_settings() -> None:
    public = {name for name in vars(memdb_settings) if not name.startswith("_")}
    assert public == {
        "MEMDB_NAME", "DATABASES", "DATABASE_ROUTERS", "MEMDB_RESTORED",
        "MEMDB_PROCESS_ENCODE", "MEMDB_PROCESS_DECODE",
    }
    assert memdb_settings.MEMDB_NAME == "django_memdb"
    assert memdb_settings.DATABASE_ROUTERS == ["django_memdb.dbrouter.MemDB"]
    assert (memdb_settings.MEMDB_PROCESS_ENCODE, memdb_settings.MEMDB_PROCESS_DECODE) == ("encode", "decode")


def test_integrator_merged_the_settings() -> None:
    for name in ("MEMDB_NAME", "MEMDB_PROCESS_ENCODE", "MEMDB_PROCESS_DECODE"):
        assert getattr(django_settings, name) == getattr(memdb_settings, name)
    assert "django_memdb" in django_settings.INSTALLED_APPS
    assert django_settings.DATABASES["django_memdb"]["ENGINE"] == "django_memdb.backend"
    assert django_settings.DATABASE_ROUTERS == ["django_memdb.dbrouter.MemDB"]


def test_persistent_storage_matches_0_0_6() -> None:
    meta = models.PersistentStorage._meta
    assert meta.db_table == "django_memdb_persistentstorage"
    fields = {f.name: f for f in meta.get_fields()}
    assert fields["application"].max_length == 63 and fields["modelname"].max_length == 63
    assert fields["codec"].max_length == 128 and fields["inserted"].auto_now_add
    assert fields["data"].get_internal_type() == "BinaryField"
    assert fields["id"].get_internal_type() == "AutoField"
    assert admin.site.is_registered(models.PersistentStorage)


def test_version_comes_from_package_metadata() -> None:
    from importlib.metadata import version

    assert django_memdb.__version__ == version("django-memdb")


def test_router() -> None:
    assert isinstance(dbrouter.MemDB(), dbrouter.MemDB)
    assert router.db_for_read(Persistent) == "django_memdb"
    assert router.db_for_write(Persistent) == "django_memdb"
    assert router.db_for_read(Plain) == "default"
    assert router.allow_migrate("django_memdb", "tests", model_name="persistent", model=Persistent)
    assert not router.allow_migrate("default", "tests", model_name="persistent", model=Persistent)
    assert not router.allow_migrate("django_memdb", "tests", model_name="plain", model=Plain)
    assert router.allow_migrate("default", "tests", model_name="plain", model=Plain)
    assert not router.allow_migrate("django_memdb", "tests")  # RunPython / RunSQL without hints


@pytest.mark.parametrize("model", [None, "tests.Persistent", object(), Persistent(), Plain()])
def test_router_and_registry_accept_models_that_are_not_classes(model: Any) -> None:
    """Django asks routers about whatever it is given (its own tests pass mocks): not a model class, not ours."""
    assert not registry.is_in_memory(model) and not registry.is_persistent(model)
    memdb = dbrouter.MemDB()
    assert memdb.db_for_read(model) is None and memdb.db_for_write(model) is None
    assert memdb.allow_migrate("default", "tests", model=model) is None
    assert memdb.allow_migrate("django_memdb", "tests", model=model) is False


def test_router_while_django_model_class_is_patched() -> None:
    """Django's serializer tests save with ``django.db.models.Model`` patched."""
    with mock.patch("django.db.models.Model"):
        assert router.db_for_write(Plain) == "default"
        assert not registry.is_in_memory(Plain)


def test_dotted_processor_names() -> None:
    import functools
    import zlib

    assert dotted_name(test_router) == "tests.test_api.test_router"
    assert dotted_name(functools.partial(test_router)) == "tests.test_api.test_router"
    assert dotted_name(zlib.compress) == "zlib.compress"
    assert codec_of([test_router, zlib.compress]) == "tests.test_api.test_router,zlib.compress"


@pytest.mark.django_db(databases=["default", "django_memdb"])
def test_signal_arguments() -> None:
    seen: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        arguments = kwargs["kwargs"]
        seen.append((sender, {**arguments, "data": arguments["data"]}))

    signals.store_save.connect(receiver)
    signals.store_load.connect(receiver)
    try:
        pk = Persistent.objects.create(text="x").pk
        restore.restore()
    finally:
        signals.store_save.disconnect(receiver)
        signals.store_load.disconnect(receiver)
    (sender, save), (_, load) = seen[0], next(s for s in seen if s[1]["process"] == "decode")
    assert sender is Persistent
    assert save == {
        "data": [{"model": "tests.persistent", "pk": pk, "fields": {"text": "x"}}],
        "application": "tests", "model": "Persistent", "database": "django_memdb",
        "processors": [], "process": "encode",
    }
    assert isinstance(load["data"], bytes) and load["process"] == "decode"


def _child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=REPO, env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env},
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.processes
def test_no_query_during_app_initialisation(tmp_path: Path) -> None:
    # A default database that cannot be opened: any query during setup fails.
    unreachable = str(tmp_path / "missing-dir" / "db.sqlite3")
    result = _child(
        "import django; django.setup(); from django.core import checks; "
        "assert not checks.run_checks(); print('ok')",
        MEMDB_TEST_DATABASE="sqlite", MEMDB_TEST_DB_NAME=unreachable,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.processes
def test_manage_py_test_never_opens_the_production_database(tmp_path: Path) -> None:
    production = tmp_path / "production.sqlite3"
    result = subprocess.run(
        [sys.executable, "manage.py", "test", "tests.test_compat_006", "-v", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "MEMDB_TEST_DATABASE": "sqlite", "MEMDB_TEST_DB_NAME": str(production)},
    )
    assert result.returncode == 0, result.stderr
    assert not production.exists()


def test_in_memory_alias_is_not_the_default() -> None:
    assert connections["django_memdb"].settings_dict["NAME"] != connections["default"].settings_dict["NAME"]
