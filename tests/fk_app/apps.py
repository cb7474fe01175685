from __future__ import annotations

from django.apps import AppConfig


class FkAppConfig(AppConfig):
    name = "tests.fk_app"
    label = "fk_app"
    default_auto_field = "django.db.models.AutoField"
