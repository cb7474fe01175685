"""Reads that the identity map answers without compiling SQL.

``Manager.get(pk=…)``, ``QuerySet.get(pk=…)`` on an unfiltered queryset,
``filter(pk=…).first()``, ``in_bulk(…)`` and the forward foreign-key and
one-to-one descriptors look in the map first; anything they cannot answer
exactly as the ORM would (other filters, ``select_for_update``, ``only()``,
annotations, ...) goes through the ORM, which feeds the map.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.db import models, router
from django.db.models.fields.related_descriptors import (
    ForwardManyToOneDescriptor,
    ForwardOneToOneDescriptor,
)
from django.db.models.lookups import Exact
from django.db.models.query import ModelIterable

from . import expiry, identity

_NOTHING_DEFERRED: tuple[frozenset[str], bool] = (frozenset(), True)


class ModelInfo:
    """What the fast paths need to know of one mapped model, computed once."""

    def __init__(self, model: type[models.Model]) -> None:
        meta = model._meta
        pk = meta.pk
        assert pk is not None
        self.model = model
        self.pk = pk
        self.names = {"pk", "pk__exact", pk.name, f"{pk.name}__exact", pk.attname, f"{pk.attname}__exact"}
        self.fields = len(meta.concrete_fields)
        self.pk_index = list(meta.concrete_fields).index(pk)
        internal = pk.get_internal_type()
        self.native: type | None = {
            "AutoField": int, "BigAutoField": int, "SmallAutoField": int, "IntegerField": int,
            "BigIntegerField": int, "SmallIntegerField": int, "PositiveIntegerField": int,
            "PositiveBigIntegerField": int, "PositiveSmallIntegerField": int,
            "CharField": str, "TextField": str, "SlugField": str, "UUIDField": uuid.UUID,
        }.get(internal)
        self.cached_alias: str | None = None
        self.mapped = identity.is_mapped(model)
        self.shared = bool(getattr(model, "memdb_identity_shared", False))
        # An expiring model is purged before the map answers, as the router
        # purges before the ORM reads: the map never outlives the read window.
        self.expiring = expiry.declared(model) is not None

    def alias(self) -> str:
        """The alias the routers read this model from (cached; see clear_aliases)."""
        alias = self.cached_alias
        if alias is None:
            alias = self.cached_alias = router.db_for_read(self.model)
        return alias

    def clean(self, value: Any) -> Any:
        """``value`` as the map keys it, or None when only the ORM can tell."""
        if type(value) is self.native:
            return value
        if isinstance(value, (models.Model, models.expressions.BaseExpression)) or value is None:
            return None
        try:
            return self.pk.to_python(value)
        except Exception:  # the ORM raises the error the user expects
            return None


_infos: dict[type[models.Model], ModelInfo] = {}


def info_for(model: type[models.Model]) -> ModelInfo:
    found = _infos.get(model)
    if found is None:
        found = _infos[model] = ModelInfo(model)
    return found


def clear_aliases(**kwargs: Any) -> None:
    """Routers or the alias changed (``setting_changed``)."""
    for info in _infos.values():
        info.cached_alias = None


def _lookup_kwargs(model: type[models.Model], using: str | None, kwargs: dict[str, Any]) -> Any:
    ((name, value),) = kwargs.items()
    info = info_for(model)
    if name not in info.names:
        return None
    pk = info.clean(value)
    if pk is None:
        return None
    if info.expiring:
        expiry.before_use(model)
    return identity.lookup(using or info.alias(), model, pk)


# Manager classes whose get_queryset() is Django's: related managers, which
# subclass them to filter, are not among them.
FAST_MANAGERS: set[type] = set()


class IdentityManagerMixin:
    """Mixed into the managers of a mapped model: ``get(pk=…)`` without building a QuerySet."""

    model: type[models.Model]
    _db: str | None

    def get(self, *args: Any, **kwargs: Any) -> Any:
        # Inlined: this path is the one the map exists for.
        if not args and len(kwargs) == 1 and type(self) in FAST_MANAGERS:
            model = self.model
            info = _infos.get(model) or info_for(model)
            ((name, value),) = kwargs.items()
            if name in info.names:
                pk = value if type(value) is info.native else info.clean(value)
                if pk is not None:
                    if info.expiring:
                        expiry.before_use(model)
                    found = identity.lookup(self._db or info.cached_alias or info.alias(), model, pk)
                    if found is not None:
                        return found
                    # A miss: the queryset need not look again.
                    queryset = self.get_queryset()  # type: ignore[attr-defined]
                    if isinstance(queryset, IdentityQuerySetMixin):
                        return super(IdentityQuerySetMixin, queryset).get(*args, **kwargs)  # type: ignore[misc]
                    return queryset.get(*args, **kwargs)
        return self.get_queryset().get(*args, **kwargs)  # type: ignore[attr-defined]


def _plain(queryset: Any) -> bool:
    """True when the queryset loads whole instances of its model and nothing changes how."""
    query = queryset.query
    return (
        queryset._iterable_class is ModelIterable
        and queryset._fields is None
        and not queryset._prefetch_related_lookups
        and query.select_related is False
        and not query.select_for_update
        and not query.low_mark
        and query.high_mark is None
        and not query.distinct
        and not query.annotations
        and not query.extra
        and not query.combinator
        and query.deferred_loading == _NOTHING_DEFERRED
    )


def _pk_filter(queryset: Any) -> Any:
    """The value of the queryset's only condition when it is ``pk = value``, else None."""
    where = queryset.query.where
    if where.negated or where.connector != "AND" or len(where.children) != 1:
        return None
    condition = where.children[0]
    if not isinstance(condition, Exact) or not condition.rhs_is_direct_value():
        return None
    column = condition.lhs
    info = info_for(queryset.model)
    if getattr(column, "target", None) is not info.pk or column.alias != queryset.query.base_table:
        return None
    return info.clean(condition.rhs)


class IdentityQuerySetMixin:
    """Mixed into the querysets of a mapped model: single-row and bulk reads by pk."""

    model: type[models.Model]
    query: Any
    _db: str | None

    def _memdb_alias(self) -> str:
        return self._db or info_for(self.model).alias()

    def get(self, *args: Any, **kwargs: Any) -> Any:
        if not args and len(kwargs) == 1 and not self.query.where.children and _plain(self):
            found = _lookup_kwargs(self.model, self._db, kwargs)
            if found is not None:
                return found
        return super().get(*args, **kwargs)  # type: ignore[misc]

    def first(self) -> Any:
        if _plain(self):
            pk = _pk_filter(self)
            if pk is not None:
                if info_for(self.model).expiring:
                    expiry.before_use(self.model)
                found = identity.lookup(self._memdb_alias(), self.model, pk)
                if found is not None:
                    return found
        return super().first()  # type: ignore[misc]

    def iterator(self, chunk_size: int | None = None) -> Any:
        return identity.pinned(super().iterator(chunk_size))  # type: ignore[misc]

    def in_bulk(self, id_list: Any = None, *, field_name: str = "pk") -> dict[Any, Any]:
        info = info_for(self.model)
        if id_list is None or field_name not in info.names or self.query.where.children or not _plain(self):
            return super().in_bulk(id_list, field_name=field_name)  # type: ignore[misc]
        alias = self._memdb_alias()
        if info.expiring:
            expiry.before_use(self.model)
        found: dict[Any, Any] = {}
        missing = []
        for value in id_list:
            pk = info.clean(value)
            instance = None if pk is None else identity.lookup(alias, self.model, pk)
            if instance is None:
                missing.append(value)
            else:
                found[pk] = instance
        if missing:
            found.update(super().in_bulk(missing, field_name=field_name))  # type: ignore[misc]
        return found


# Forward relations to a mapped model


class _FastForward:
    """``__get__`` that answers from the instance's cache, then from the map, then as Django does."""

    field: Any
    memdb_cache_name: str | None = None

    def __get__(self, instance: models.Model | None, cls: Any = None) -> Any:
        if instance is None:
            return self
        field = self.field
        name = self.memdb_cache_name
        if name is None:
            name = self.memdb_cache_name = field.cache_name if hasattr(field, "cache_name") else field.get_cache_name()
        cache = instance._state.fields_cache
        try:
            return cache[name]
        except KeyError:
            pass
        if field.target_field.primary_key:
            pk = instance.__dict__.get(field.attname)
            if pk is not None:
                related = field.remote_field.model
                info = _infos.get(related) or info_for(related)
                if info.expiring:
                    expiry.before_use(related)
                found = identity.lookup(info.cached_alias or info.alias(), related, pk)
                if found is not None:
                    if not field.remote_field.multiple:
                        field.remote_field.set_cached_value(found, instance)
                    cache[name] = found
                    return found
        return super().__get__(instance, cls)  # type: ignore[misc]


if TYPE_CHECKING:
    _ForwardManyToOne = ForwardManyToOneDescriptor[Any]
    _ForwardOneToOne = ForwardOneToOneDescriptor[Any]
else:  # not subscriptable at run time
    _ForwardManyToOne, _ForwardOneToOne = ForwardManyToOneDescriptor, ForwardOneToOneDescriptor


class IdentityForwardManyToOneDescriptor(_FastForward, _ForwardManyToOne):
    """``child.parent`` from the map when the parent's row is mapped."""


class IdentityForwardOneToOneDescriptor(_FastForward, _ForwardOneToOne):
    """``place.restaurant``-style forward one-to-one from the map."""
