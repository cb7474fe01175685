"""The app that holds MemDBCache's tables; add it to INSTALLED_APPS to use the cache."""

from __future__ import annotations

from django.apps import AppConfig


class MemDBCacheConfig(AppConfig):
    name = "django_memdb.cache"
    label = "memdb_cache"
    verbose_name = "Django Memory Database cache"
    default_auto_field = "django.db.models.AutoField"
