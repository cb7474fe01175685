"""Application configuration: connects receivers and checks, and queries nothing."""

from __future__ import annotations

from django.apps import AppConfig


class MemDBConfig(AppConfig):
    name = "django_memdb"
    verbose_name = "Django Memory Database"
    # 0.0.6 created PersistentStorage with an AutoField id.
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Django's convention: checks and receivers register when imported here.
        from . import bounds, checks, identity_install, identity_receivers, lifecycle, receivers  # noqa: F401

        lifecycle.install()
        identity_install.install_relations()
        bounds.connect_receivers()
