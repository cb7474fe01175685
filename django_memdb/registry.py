"""Which models live in memory, which are persisted, and their tables."""

from __future__ import annotations

from functools import lru_cache
from typing import cast

from django.apps import apps
from django.db import models
from django.db.models.base import ModelBase

from .tags import InMemoryDB, PeristentInMemoryDB


def _owner(model: type[models.Model]) -> type[models.Model] | None:
    """The model that auto-created ``model`` (an M2M through table), if any."""
    owner = model._meta.auto_created
    return owner if isinstance(owner, type) else None


def _current(model: type[models.Model]) -> type[models.Model]:
    """Map a historical (migration) model to the project's current class."""
    if model.__module__ == "__fake__":
        try:
            return apps.get_model(model._meta.app_label, model._meta.model_name)
        except LookupError:
            return model
    return model


def _tagged(model: object, tag: type) -> bool:
    """True for models with the tag and the auto-created M2M tables they own.

    Routers are asked about whatever callers pass as a model (Django's own
    tests pass mocks, and ``model=None`` hints): anything but a model class is
    not tagged. ModelBase, bound at import, still holds while a test patches
    ``django.db.models.Model``.
    """
    if not isinstance(model, ModelBase):
        return False
    model = _current(cast("type[models.Model]", model))
    if issubclass(model, tag):
        return True
    owner = _owner(model)
    return owner is not None and issubclass(owner, tag)


def is_in_memory(model: object) -> bool:
    return _tagged(model, InMemoryDB)


def is_persistent(model: object) -> bool:
    return _tagged(model, PeristentInMemoryDB)


def migrates_in_memory(app_label: str, model_name: str | None = None, model: object = None) -> bool:
    """Whether a migration operation belongs on the in-memory alias (and only there).

    Schema operations pass their ``model``; RunPython and RunSQL carry no model
    unless given ``hints={"model_name": ...}``. An operation that names no model
    follows its app: in memory when every model of the app is, as a data
    migration of such an app can only be meant for the in-memory tables.
    """
    if model is None and model_name is not None:
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            model = None  # a model deleted since: decided by its app
    if model is not None:
        return is_in_memory(model)
    try:
        app_models = apps.get_app_config(app_label).get_models(include_auto_created=True)
    except LookupError:
        return False
    concrete = [m for m in app_models if not m._meta.proxy]
    return bool(concrete) and all(is_in_memory(m) for m in concrete)


def in_memory_models() -> list[type[models.Model]]:
    """Concrete in-memory models of the installed apps (M2M tables included)."""
    return [
        model
        for model in apps.get_models(include_auto_created=True)
        if is_in_memory(model) and not model._meta.proxy
    ]


@lru_cache(maxsize=1)
def _persistent_index() -> tuple[tuple[type[models.Model], ...], dict[str, type[models.Model]]]:
    found = tuple(
        model
        for model in apps.get_models(include_auto_created=True)
        if is_persistent(model)
        and not model._meta.proxy
        and model._meta.managed
        and model._meta.pk.column is not None  # composite keys: see check E007
    )
    return found, {model._meta.db_table: model for model in found}


def persistent_models() -> tuple[type[models.Model], ...]:
    return _persistent_index()[0]


def model_for_table(table: str) -> type[models.Model] | None:
    return _persistent_index()[1].get(table)


def storage_key(model: type[models.Model]) -> tuple[str, str]:
    """(application, modelname) as PersistentStorage records them (0.0.6 compatible)."""
    return model._meta.app_label, model.__name__


def model_for_key(application: str, modelname: str) -> type[models.Model] | None:
    for model in persistent_models():
        if storage_key(model) == (application, modelname):
            return model
    return None


def clear_cache() -> None:
    _persistent_index.cache_clear()
