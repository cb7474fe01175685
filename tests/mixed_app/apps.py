from __future__ import annotations

from django.apps import AppConfig


class MixedAppConfig(AppConfig):
    name = "tests.mixed_app"
    label = "mixed_app"
    default_auto_field = "django.db.models.AutoField"
