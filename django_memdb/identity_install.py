"""Puts the identity map into the models that ask for it.

The tag classes of ``mixins`` are plain classes, so nothing a mixin defines
reaches a model's managers: a ``class_prepared`` receiver gives each mapped
model its loading hook (``from_db``), a ``refresh_from_db`` that reads the
database, and managers and querysets with the fast paths. The forward
relation descriptors of every model that points at a mapped one are swapped
once all models are loaded (``install_relations``, from AppConfig.ready()).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import connections, models
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ForwardOneToOneDescriptor,
)
from django.db.models.manager import BaseManager
from django.db.models.signals import class_prepared

from . import identity
from .identity_manager import (
    FAST_MANAGERS,
    IdentityForwardManyToOneDescriptor,
    IdentityForwardOneToOneDescriptor,
    IdentityManagerMixin,
    IdentityQuerySetMixin,
    _infos,
    info_for,
)


def _in_transaction(alias: str) -> bool:
    connection = connections[alias]
    return connection.in_atomic_block or not connection.get_autocommit()


def _mapping_from_db(original: Any) -> Any:
    load = original.__func__

    # **kwargs: Django 6.1 passes fetch_mode, and warns about a from_db() that cannot take it.
    def from_db(cls: type[models.Model], db: str, field_names: Any, values: Any, **kwargs: Any) -> Any:
        info = _infos.get(cls) or info_for(cls)
        if not info.mapped or len(values) != info.fields:
            return load(cls, db, field_names, values, **kwargs)  # only()/defer(): never mapped
        pk = values[info.pk_index]
        found_map = identity.map_for(db, cls, info.shared)
        found = found_map.get(pk)
        if found is not None:
            return found
        instance = load(cls, db, field_names, values, **kwargs)
        if pk is not None and identity.may_map(info.shared and _in_transaction(db)):
            found_map[pk] = instance
        return instance

    return classmethod(from_db)


def _refreshing(original: Any) -> Any:
    def refresh_from_db(self: models.Model, *args: Any, **kwargs: Any) -> None:
        # The ORM's answer would otherwise be this very instance, from the map.
        model = type(self)
        alias = kwargs.get("using") or (args[0] if args else None) or self._state.db
        if alias is None or self.pk is None:
            original(self, *args, **kwargs)
            return
        identity.forget(alias, model, self.pk)
        original(self, *args, **kwargs)
        fields = kwargs.get("fields", args[1] if len(args) > 1 else None)
        shared = getattr(model, "memdb_identity_shared", False)
        if (
            fields is None
            and not self.get_deferred_fields()
            and identity.may_map(shared and _in_transaction(alias))
        ):
            identity.map_for(alias, model)[self.pk] = self

    refresh_from_db.memdb_identity = True  # type: ignore[attr-defined]
    return refresh_from_db


_classes: dict[tuple[type, type], type] = {}


def _with(mixin: type, base: type) -> type:
    if issubclass(base, mixin):
        return base
    key = (mixin, base)
    if key not in _classes:
        _classes[key] = type(f"Identity{base.__name__}", (mixin, base), {})
    return _classes[key]


def install(model: type[models.Model]) -> None:
    """Give a mapped model its hooks and fast paths (idempotent)."""
    if model._meta.abstract or model.__dict__.get("_memdb_identity_installed"):
        return
    patched: Any = model  # its methods are replaced: not what its type says
    patched._memdb_identity_installed = True
    if not getattr(model.from_db, "memdb_identity", False):
        patched.from_db = _mapping_from_db(model.from_db)
        patched.from_db.__func__.memdb_identity = True
    if not getattr(model.refresh_from_db, "memdb_identity", False):
        patched.refresh_from_db = _refreshing(model.refresh_from_db)
    managers = list(model._meta.local_managers)
    for manager in managers:
        if type(manager).get_queryset is BaseManager.get_queryset:
            # An overridden get_queryset may filter: its get() must go through it.
            manager.__class__ = _with(IdentityManagerMixin, type(manager))
            FAST_MANAGERS.add(manager.__class__)
        manager_internals: Any = manager  # Django's private attribute, left out of its stubs
        manager_internals._queryset_class = _with(IdentityQuerySetMixin, manager_internals._queryset_class)
    options: Any = model._meta
    options._expire_cache()


def _on_class_prepared(sender: type[models.Model], **kwargs: Any) -> None:
    if identity.is_mapped(sender):
        install(sender)


def install_relations() -> None:
    """Forward FK and one-to-one descriptors to mapped models read from the map."""
    for model in apps.get_models():
        for field in model._meta.local_fields:
            related = getattr(field.remote_field, "model", None)
            if not (field.is_relation and isinstance(related, type) and identity.is_mapped(related)):
                continue
            descriptor = model.__dict__.get(field.name)
            if type(descriptor) is ForwardManyToOneDescriptor:
                descriptor.__class__ = IdentityForwardManyToOneDescriptor
            elif type(descriptor) is ForwardOneToOneDescriptor:
                descriptor.__class__ = IdentityForwardOneToOneDescriptor


class_prepared.connect(_on_class_prepared, dispatch_uid="django_memdb.identity_install")
