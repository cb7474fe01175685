"""The database router that sends in-memory models to the in-memory alias."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, models

from . import expiry, lifecycle, registry
from .conf import conf


class MemDB:
    """Reads and writes of tagged models go to the in-memory alias.

    Other models are left to the next router, except that a related lookup
    started from an in-memory instance is sent to the default database rather
    than to the instance's own (in-memory) database.
    """

    def _route(self, model: type[models.Model], write: bool, **hints: Any) -> str | None:
        alias = conf.MEMDB_NAME
        if registry.is_in_memory(model):
            lifecycle.ensure_usable(model, write)
            expiry.before_use(model)
            return alias
        instance = hints.get("instance")
        if instance is not None and getattr(instance._state, "db", None) == alias:
            return DEFAULT_DB_ALIAS
        return None

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._route(model, False, **hints)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._route(model, True, **hints)

    def allow_relation(self, obj1: models.Model, obj2: models.Model, **hints: Any) -> bool | None:
        # A relation between an in-memory row and a row elsewhere is fine as
        # long as no database constraint spans the two (see check E004).
        if registry.is_in_memory(type(obj1)) != registry.is_in_memory(type(obj2)):
            return True
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        # Operations without a model (RunPython, RunSQL) are placed by their
        # hints or their app: see registry.migrates_in_memory.
        in_memory = registry.migrates_in_memory(app_label, model_name, hints.get("model"))
        if db == conf.MEMDB_NAME:
            return in_memory
        return False if in_memory else None
