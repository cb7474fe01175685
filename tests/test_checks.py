"""Every system check id, triggered by the misconfiguration it names."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import django
import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.utils import ConnectionHandler
from django.test import override_settings
from django.test.utils import isolate_apps

from django_memdb import checks
from django_memdb.mixins import InMemoryDB, PeristentInMemoryDB


def ids(errors: list[Any]) -> list[str]:
    return [error.id for error in errors]


def test_the_test_project_is_clean() -> None:
    assert checks.check_alias() == []
    assert checks.check_router() == []
    assert checks.check_relations() == []
    assert checks.check_models() == []
    assert checks.check_settings() == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_e001_alias_missing(settings: Any) -> None:
    settings.DATABASES = {"default": settings.DATABASES["default"]}
    assert ids(checks.check_alias()) == ["django_memdb.E001"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    "database",
    [
        {"ENGINE": "django.db.backends.sqlite3", "NAME": "file::memory:?cache=shared"},
        {"ENGINE": "django_memdb.backend", "NAME": "/tmp/on-disk.sqlite3"},
    ],
)
def test_e002_alias_not_in_memory(settings: Any, database: dict[str, str]) -> None:
    settings.DATABASES = {**settings.DATABASES, "django_memdb": database}
    [error] = checks.check_alias()
    assert error.id == "django_memdb.E002"
    assert "django_memdb.backend" in error.hint


@pytest.mark.django_db(databases=["default", "django_memdb"])  # lets the wrapper try to connect
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize("name", ["on-disk.sqlite3", "file:on-disk.sqlite3?cache=shared", ""])
def test_the_engine_refuses_a_name_that_is_not_in_memory(
    settings: Any, tmp_path: Path, monkeypatch: Any, name: str
) -> None:
    # shell and scripts skip the checks: the engine itself must not create the file.
    monkeypatch.chdir(tmp_path)
    database = {"ENGINE": "django_memdb.backend", "NAME": name}
    handler = ConnectionHandler({"default": {"ENGINE": "django.db.backends.dummy"}, "django_memdb": database})
    wrapper = handler["django_memdb"]
    with pytest.raises(ImproperlyConfigured) as raised:
        wrapper.ensure_connection()
    settings.DATABASES = {**settings.DATABASES, "django_memdb": database}
    [error] = checks.check_alias()
    assert str(raised.value) == f"{error.msg} {error.hint}"
    assert "DATABASES['django_memdb']" in error.msg and "mode=memory" in error.hint
    assert list(tmp_path.iterdir()) == []


def test_e003_router_missing() -> None:
    with override_settings(DATABASE_ROUTERS=[]):
        assert ids(checks.check_router()) == ["django_memdb.E003"]


@isolate_apps("tests")
def test_e004_e005_w001_relations() -> None:
    class Outside(models.Model):
        pass

    class Volatile(models.Model, InMemoryDB):
        pass

    class Inside(models.Model, PeristentInMemoryDB):
        outside = models.ForeignKey(Outside, models.CASCADE)
        loose = models.ForeignKey(Outside, models.CASCADE, db_constraint=False, related_name="+")
        volatile = models.ForeignKey(Volatile, models.CASCADE)

    class Pointing(models.Model):
        inside = models.ForeignKey(Inside, models.CASCADE)
        loose = models.ForeignKey(Inside, models.CASCADE, db_constraint=False, related_name="+")

    found = checks.check_relations(app_configs=[Inside._meta.apps.get_app_config("tests")])
    assert sorted((e.id, e.obj.name) for e in found) == [
        ("django_memdb.E004", "outside"),
        ("django_memdb.E005", "inside"),
        ("django_memdb.W001", "volatile"),
    ]
    assert "db_constraint=False" in found[0].hint


def test_e006_persistent_model_outside_installed_apps() -> None:
    with isolate_apps("tests"):

        class Stray(models.Model, PeristentInMemoryDB):
            class Meta:
                app_label = "not_installed"

        assert ("django_memdb.E006", Stray) in [(e.id, e.obj) for e in checks.check_models()]
    del Stray
    gc.collect()
    assert checks.check_models() == []


@pytest.mark.skipif(django.VERSION < (5, 2), reason="composite primary keys exist from Django 5.2")
def test_e007_composite_primary_key() -> None:
    with isolate_apps("tests"):

        class Pair(models.Model, PeristentInMemoryDB):
            pk = models.CompositePrimaryKey("a", "b")  # type: ignore[attr-defined]
            a = models.IntegerField()
            b = models.IntegerField()

        assert ("django_memdb.E007", Pair) in [(e.id, e.obj) for e in checks.check_models()]
    del Pair
    gc.collect()


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("MEMDB_DURABILITY", "always", "django_memdb.E008"),
        ("MEMDB_FLUSH_INTERVAL", 0, "django_memdb.E009"),
        ("MEMDB_FLUSH_INTERVAL", "1", "django_memdb.E009"),
        ("MEMDB_MODE", "cluster-of-one", "django_memdb.E010"),
    ],
)
def test_e008_e009_e010_settings(settings: Any, name: str, value: Any, check_id: str) -> None:
    setattr(settings, name, value)
    assert ids(checks.check_settings()) == [check_id]


def test_checks_are_registered() -> None:
    from django.core import checks as django_checks

    registered = {f.__name__ for f in django_checks.registry.registry.get_checks(include_deployment_checks=True)}
    assert {"check_alias", "check_router", "check_relations", "check_models", "check_settings"} <= registered
    assert apps.is_installed("django_memdb")


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_e011_cluster_mode_needs_a_server(settings: Any) -> None:
    settings.MEMDB_MODE = "cluster"
    settings.MEMDB_CLUSTER_DATABASE = "nowhere"
    assert ids(checks.check_cluster()) == ["django_memdb.E011"]
    settings.DATABASES = {**settings.DATABASES, "files": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}}
    settings.MEMDB_CLUSTER_DATABASE = "files"
    errors = checks.check_cluster()
    assert ids(errors) == ["django_memdb.E011"] and "sqlite" in errors[0].msg
    settings.DATABASES = {**settings.DATABASES, "server": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"}}
    settings.MEMDB_CLUSTER_DATABASE = "server"
    assert checks.check_cluster() == []  # UNLOGGED tables hold every column type
    settings.MEMDB_MODE = "host"
    settings.MEMDB_CLUSTER_DATABASE = "nowhere"
    assert checks.check_cluster() == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_e012_models_that_memory_tables_cannot_hold(settings: Any) -> None:
    settings.MEMDB_MODE = "cluster"
    settings.DATABASES = {**settings.DATABASES, "server": {"ENGINE": "django.db.backends.mysql", "NAME": "x"}}
    settings.MEMDB_CLUSTER_DATABASE = "server"
    errors = {error.obj._meta.label: error for error in checks.check_cluster()}
    assert all(error.id == "django_memdb.E012" for error in errors.values())
    # The test project's TextFields, JSON and binary columns; CharFields and numbers fit.
    assert "text (TextField) would be a longtext column" in errors["tests.Persistent"].msg
    assert "payload (JSONField)" in errors["tests.Rich"].msg and "blob (BinaryField)" in errors["tests.Rich"].msg
    assert "tests.Other" not in errors
    assert "CharField(max_length=...)" in (errors["tests.Persistent"].hint or "")


def test_e012_row_size(settings: Any) -> None:
    from django_memdb.cluster.dialect import memory_problems

    with isolate_apps("tests"):

        class Wide(models.Model, InMemoryDB):
            first = models.CharField(max_length=10_000)
            second = models.CharField(max_length=10_000)

            class Meta:
                app_label = "tests"

    assert memory_problems(Wide) == [
        "its rows would take up to 80012 bytes (MEMORY's limit is 65535)"
    ]
