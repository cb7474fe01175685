"""The demo app's configuration."""

from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "django_memdb.demo"
    label = "memdb_demo"
    verbose_name = "django-memdb demo"
    default_auto_field = "django.db.models.BigAutoField"
