"""System checks of expiring and bounded models (expiry.py, bounds.py)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import FieldDoesNotExist
from django.db import models

from . import bounds, modes, registry
from .conf import conf
from .expiry import Expiry


def _subclasses(cls: type) -> Iterator[Any]:
    sub: Any
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


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
        mode = modes.current()
        refusal = mode.row_bounds_refusal(model)
        if refusal:
            errors.append(
                Error(
                    f"{label} declares memdb_max_rows, which MEMDB_MODE '{mode.name}' does not enforce: {refusal}.",
                    hint="Use MEMDB_MODE 'host' or 'process' for this bounded table, cluster mode on PostgreSQL "
                    "with memdb_eviction = 'oldest', or drop memdb_max_rows (memdb_expiry works in every mode).",
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
    if not _number(interval) or not interval > 0:  # NaN too
        errors.append(
            Error(
                f"MEMDB_EXPIRY_INTERVAL is {interval!r}.",
                hint="Use a number of seconds greater than 0.",
                id="django_memdb.E017",
            )
        )
    return errors
