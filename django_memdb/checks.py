"""System checks for every misconfiguration of django-memdb a project can make."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.db import models, router

from . import identity, modes, registry
from .backend import names
from .backend.names import ENGINE, EXAMPLE_NAME
from .conf import DURABILITY_CHOICES, MODE_CHOICES, conf
from .limit_checks import _subclasses
from .limit_checks import check_expiry_and_bounds as check_expiry_and_bounds
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
            if target is None or isinstance(target, str) or not getattr(field, "db_constraint", True):
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


@register(Tags.database, Tags.models)
def check_mode(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """What the mode of MEMDB_MODE needs (cluster mode: a server, and tables it can hold)."""
    return list(modes.current().checks())


# The name of this check before the modes had their own.
check_cluster = check_mode


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
