"""System checks for every misconfiguration of django-memdb a project can make."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models, router
from django.db.utils import load_backend

from . import bounds, identity, registry
from .backend import names
from .backend.names import ENGINE, EXAMPLE_NAME
from .cluster import dialect
from .conf import DURABILITY_CHOICES, MODE_CHOICES, MODE_CLUSTER, conf
from .expiry import Expiry
from .mixins import InMemoryDB, PeristentInMemoryDB
from .router import MemDB


@register(Tags.database, Tags.compatibility)
def check_alias(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    alias = conf.MEMDB_NAME
    database = settings.DATABASES.get(alias)
    if database is None:
        return [
            Error(
                f"DATABASES has no entry for the in-memory alias '{alias}'.",
                hint=(
                    "Add django_integrator.add_application('django_memdb') at the "
                    f"bottom of settings.py, or DATABASES['{alias}'] = "
                    f"{{'ENGINE': '{ENGINE}', 'NAME': '{EXAMPLE_NAME}'}}."
                ),
                id="django_memdb.E001",
            )
        ]
    engine, name = database.get("ENGINE"), database.get("NAME", "")
    if engine != ENGINE or not names.is_in_memory(name):
        message, hint = names.not_in_memory(alias, engine, name)
        return [Error(message, hint=hint, id="django_memdb.E002")]
    return []


@register(Tags.database)
def check_router(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    if any(isinstance(each, MemDB) for each in router.routers):
        return []
    return [
        Error(
            "The router of django-memdb is not installed: in-memory models would be "
            "read from and written to the default database.",
            hint="Add 'django_memdb.dbrouter.MemDB' to DATABASE_ROUTERS.",
            id="django_memdb.E003",
        )
    ]


def _foreign_keys(model: type[models.Model]) -> Iterator[models.ForeignKey[Any, Any]]:
    for field in model._meta.local_fields:
        if isinstance(field, models.ForeignKey):
            yield field


def _models(app_configs: Any) -> Iterator[type[models.Model]]:
    configs = apps.get_app_configs() if app_configs is None else app_configs
    for config in configs:
        yield from config.get_models(include_auto_created=True)


@register(Tags.models)
def check_relations(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = []
    for model in _models(app_configs):
        inside = registry.is_in_memory(model)
        for field in _foreign_keys(model):
            target: Any = field.related_model
            if target is None or isinstance(target, str) or not field.db_constraint:
                continue
            if inside and not registry.is_in_memory(target):
                errors.append(
                    Error(
                        f"{model._meta.label}.{field.name} is a database-level foreign "
                        f"key from the in-memory database to {target._meta.label}, "
                        "which is not in it.",
                        hint="Declare the field with db_constraint=False; reads across "
                        "the two databases keep working.",
                        obj=field,
                        id="django_memdb.E004",
                    )
                )
            elif not inside and registry.is_in_memory(target):
                errors.append(
                    Error(
                        f"{model._meta.label}.{field.name} is a database-level foreign "
                        f"key to the in-memory model {target._meta.label} from outside "
                        "the in-memory database.",
                        hint="Declare the field with db_constraint=False.",
                        obj=field,
                        id="django_memdb.E005",
                    )
                )
            elif (
                inside
                and registry.is_persistent(model)
                and not registry.is_persistent(target)
            ):
                errors.append(
                    Warning(
                        f"{model._meta.label}.{field.name} refers to {target._meta.label}, "
                        "which is in memory but not persistent: after a restart the "
                        "restored rows point at rows that are gone.",
                        hint=f"Tag {target._meta.label} with PeristentInMemoryDB too.",
                        obj=field,
                        id="django_memdb.W001",
                    )
                )
    return errors


def _subclasses(cls: type) -> Iterator[Any]:
    sub: Any
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@register(Tags.models)
def check_models(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = []
    seen: set[Any] = set()
    for model in _subclasses(InMemoryDB):
        if model in seen or not issubclass(model, models.Model) or model.__module__ == "__fake__":
            continue
        seen.add(model)
        meta = model._meta
        if meta.abstract or meta.proxy:
            continue
        persistent = issubclass(model, PeristentInMemoryDB)
        if persistent and meta.app_label not in apps.app_configs:
            errors.append(
                Error(
                    f"{meta.label} is persistent but its app '{meta.app_label}' is not "
                    "in INSTALLED_APPS: its table is never created nor restored.",
                    hint=f"Add the app of {meta.label} to INSTALLED_APPS.",
                    obj=model,
                    id="django_memdb.E006",
                )
            )
        pk = meta.pk
        if persistent and (pk is None or not pk.concrete or len(getattr(pk, "fields", ())) > 1):
            errors.append(
                Error(
                    f"{meta.label} is persistent but has no single-column primary key.",
                    hint="Give the model a single-column primary key (the default id is fine).",
                    obj=model,
                    id="django_memdb.E007",
                )
            )
    return errors


def _choice(name: str, value: Any, choices: tuple[str, ...], check_id: str) -> list[Any]:
    if value in choices:
        return []
    hint = "Use one of: " + ", ".join(repr(c) for c in choices) + "."
    return [Error(f"{name} is {value!r}.", hint=hint, id=check_id)]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors = _choice("MEMDB_DURABILITY", conf.MEMDB_DURABILITY, DURABILITY_CHOICES, "django_memdb.E008")
    interval = conf.MEMDB_FLUSH_INTERVAL
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        errors.append(
            Error(
                f"MEMDB_FLUSH_INTERVAL is {interval!r}.",
                hint="Use a number of seconds greater than 0.",
                id="django_memdb.E009",
            )
        )
    return errors + _choice("MEMDB_MODE", conf.MEMDB_MODE, MODE_CHOICES, "django_memdb.E010")


def _vendor(engine: str) -> str:
    try:
        return str(load_backend(engine).DatabaseWrapper.vendor)
    except ImproperlyConfigured:  # its driver is not installed here: judge by the name
        return "mysql" if "mysql" in engine else "postgresql" if "postg" in engine else engine or "no engine"


@register(Tags.database, Tags.models)
def check_cluster(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Cluster mode needs a server, and MariaDB/MySQL MEMORY tables hold no TEXT/BLOB."""
    if conf.MEMDB_MODE != MODE_CLUSTER:
        return []
    alias = conf.MEMDB_CLUSTER_DATABASE
    source = settings.DATABASES.get(alias)
    if source is None:
        return [
            Error(
                f"MEMDB_MODE is 'cluster' but MEMDB_CLUSTER_DATABASE names '{alias}', which is not in DATABASES.",
                hint="Set MEMDB_CLUSTER_DATABASE to the alias of a PostgreSQL or MariaDB/MySQL database.",
                id="django_memdb.E011",
            )
        ]
    vendor = _vendor(source.get("ENGINE", ""))
    if vendor not in ("postgresql", "mysql"):
        return [
            Error(
                f"MEMDB_MODE is 'cluster' but DATABASES['{alias}'] is {vendor}: cluster mode keeps "
                "the in-memory tables on a PostgreSQL or MariaDB/MySQL server.",
                hint="Point MEMDB_CLUSTER_DATABASE at such a database, or use MEMDB_MODE 'host' (one "
                "machine) or 'process'.",
                id="django_memdb.E011",
            )
        ]
    if vendor != "mysql":
        return []
    errors: list[Any] = []
    for model in registry.in_memory_models():
        problems = dialect.memory_problems(model)
        if problems:
            errors.append(
                Error(
                    f"{model._meta.label} cannot live in a MariaDB/MySQL MEMORY table: "
                    + "; ".join(problems) + ".",
                    hint="MEMORY tables hold no TEXT, BLOB or JSON columns and rows of at most 64 KiB: "
                    "use CharField(max_length=...) for short text, or keep the in-memory tables on "
                    "PostgreSQL (UNLOGGED tables have no such limits), or use MEMDB_MODE 'host'.",
                    obj=model,
                    id="django_memdb.E012",
                )
            )
    return errors


def identity_map_errors(model_list: Any) -> list[Any]:
    """Models that ask for the identity map and cannot have it."""
    errors: list[Any] = []
    for model in model_list:
        if not identity.is_mapped(model) or model._meta.abstract:
            continue
        label = model._meta.label
        if not registry.is_in_memory(model):
            errors.append(
                Error(
                    f"{label} asks for the identity map but is not in memory: writes to its table "
                    "are not all seen, so the map could return rows that changed.",
                    hint=f"Tag {label} with InMemoryDB (or PersistentInMemoryDB), or remove "
                    "memdb_identity_map / IdentityMapped from it.",
                    obj=model,
                    id="django_memdb.E020",
                )
            )
        pk = model._meta.pk
        if pk is None or not pk.concrete or len(getattr(pk, "fields", ())) > 1:
            errors.append(
                Error(
                    f"{label} asks for the identity map but has no single-column primary key to map rows by.",
                    hint=f"Give {label} a single-column primary key, or remove memdb_identity_map from it.",
                    obj=model,
                    id="django_memdb.E021",
                )
            )
    return errors


@register(Tags.models)
def check_identity_map(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    return identity_map_errors(_models(app_configs))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _indexed(field: Any) -> bool:
    return bool(field.db_index or field.unique or field.primary_key)


def _expiry_problem(model: type[models.Model], spec: Any) -> str | None:
    if not isinstance(spec, Expiry):
        return f"memdb_expiry is {spec!r}, not an Expiry"
    if not registry.is_in_memory(model):
        return "it declares memdb_expiry but its table is not in memory"
    seconds: Any = spec.ttl.total_seconds() if isinstance(spec.ttl, datetime.timedelta) else spec.ttl
    if spec.ttl is not None and not (_number(seconds) and seconds > 0):
        return f"Expiry ttl is {spec.ttl!r}, not a number of seconds greater than 0"
    if spec.field is None:
        return "Expiry names no field"
    try:
        field = model._meta.get_field(spec.field)
    except FieldDoesNotExist:
        return f"Expiry names the field {spec.field!r}, which {model.__name__} does not have"
    if not isinstance(field, models.DateTimeField):
        return f"Expiry names the field {spec.field!r}, which is not a DateTimeField"
    return None


def _bound_problem(model: type[models.Model]) -> str | None:
    bound, eviction = getattr(model, "memdb_max_rows", None), getattr(model, "memdb_eviction", bounds.OLDEST)
    if not registry.is_in_memory(model):
        return "it declares memdb_max_rows or memdb_eviction but its table is not in memory"
    if not isinstance(bound, int) or isinstance(bound, bool) or bound <= 0:
        return f"memdb_max_rows is {bound!r}, not a whole number greater than 0"
    if eviction not in bounds.EVICTIONS:
        return f"memdb_eviction is {eviction!r}, not one of " + ", ".join(repr(e) for e in bounds.EVICTIONS)
    return None


@register(Tags.models)
def check_expiry_and_bounds(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Expiring and bounded models (expiry.py, bounds.py) declare what those need."""
    errors: list[Any] = []
    # Every model class, as check_models does: also those of an app not installed.
    every = {model for model in _subclasses(models.Model) if model.__module__ != "__fake__"}
    for model in sorted(every, key=lambda model: (model.__module__, model.__qualname__)):
        if model._meta.abstract or model._meta.proxy or model._meta.auto_created:
            continue
        if app_configs is not None and model._meta.app_config not in app_configs:
            continue
        label = model._meta.label
        spec = getattr(model, "memdb_expiry", None)
        problem = None if spec is None else _expiry_problem(model, spec)
        if problem:
            errors.append(
                Error(
                    f"{label}: {problem}.",
                    hint="Declare memdb_expiry = Expiry(ttl=<seconds>, field='<DateTimeField it counts from>') "
                    "or Expiry(field='<DateTimeField holding the expiry time>') on a model tagged InMemoryDB.",
                    obj=model,
                    id="django_memdb.E013",
                )
            )
        elif spec is not None and not _indexed(model._meta.get_field(spec.field)):
            errors.append(
                Warning(
                    f"{label}.{spec.field} has no index: each purge of expired rows reads the whole table.",
                    hint="Declare the field with db_index=True.",
                    obj=model,
                    id="django_memdb.W002",
                )
            )
        declared = hasattr(model, "memdb_max_rows") or hasattr(model, "memdb_eviction")
        problem = _bound_problem(model) if declared else None
        if problem:
            errors.append(
                Error(
                    f"{label}: {problem}.",
                    hint="Declare memdb_max_rows = <rows> and memdb_eviction = 'oldest' or 'lru' "
                    "on a model tagged InMemoryDB.",
                    obj=model,
                    id="django_memdb.E014",
                )
            )
            continue
        if not declared:
            continue
        if conf.MEMDB_MODE == MODE_CLUSTER:
            errors.append(
                Error(
                    f"{label} declares memdb_max_rows, which MEMDB_MODE 'cluster' does not enforce.",
                    hint="Use MEMDB_MODE 'host' or 'process' for bounded tables, or drop memdb_max_rows "
                    "(memdb_expiry works in every mode).",
                    obj=model,
                    id="django_memdb.E016",
                )
            )
        for relation in model._meta.related_objects:
            remote = relation.remote_field
            if relation.one_to_many or relation.one_to_one:
                if getattr(remote, "db_constraint", False) and not relation.related_model._meta.proxy:
                    errors.append(
                        Error(
                            f"{relation.related_model._meta.label}.{remote.name} is a database-level foreign key "
                            f"to the bounded model {label}: an eviction (an SQL delete, without on_delete) would "
                            "make the inserting transaction fail.",
                            hint="Declare the field with db_constraint=False, or drop memdb_max_rows.",
                            obj=model,
                            id="django_memdb.E015",
                        )
                    )
    interval = conf.MEMDB_EXPIRY_INTERVAL
    if not _number(interval) or interval <= 0:
        errors.append(
            Error(
                f"MEMDB_EXPIRY_INTERVAL is {interval!r}.",
                hint="Use a number of seconds greater than 0.",
                id="django_memdb.E017",
            )
        )
    return errors
