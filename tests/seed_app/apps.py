from __future__ import annotations

from django.apps import AppConfig


class SeedAppConfig(AppConfig):
    name = "tests.seed_app"
    label = "seed_app"
    default_auto_field = "django.db.models.AutoField"
