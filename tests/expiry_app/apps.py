from __future__ import annotations

from django.apps import AppConfig


class ExpiryAppConfig(AppConfig):
    name = "tests.expiry_app"
    label = "expiry_app"
    default_auto_field = "django.db.models.AutoField"
