"""``manage.py memdb_demo``: a persistent in-memory table surviving a process restart, in three processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction

from ... import registry
from ...conf import conf
from ...inspection import plural
from ...models import PersistentJournal, PersistentStorage


class Command(BaseCommand):
    help = (
        "Show a persistent in-memory table surviving a restart: writes rows in one process and reads "
        "them back in another (needs 'django_memdb.demo' in INSTALLED_APPS; uses the default database)."
    )
    # A project may run the demo on its own models (the test project does).
    persistent_model = "memdb_demo.Note"
    ephemeral_model = "memdb_demo.Draft"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--step", choices=["reset", "write", "read"], help="run one step only")

    def handle(self, *args: Any, step: str | None = None, **options: Any) -> None:
        persistent, ephemeral = self._model(self.persistent_model), self._model(self.ephemeral_model)
        if step == "reset":
            found = persistent._default_manager.count()
            self.stdout.write(
                f"pid {os.getpid()}: {found} rows restored from earlier runs; starting from an empty table"
            )
            persistent._default_manager.all().delete()
        elif step == "write":
            self.write(persistent, ephemeral)
        elif step == "read":
            self.read(persistent, ephemeral)
        else:
            self.run_all()

    def _model(self, name: str) -> type[models.Model]:
        try:
            return apps.get_model(name)
        except LookupError:
            raise CommandError(
                f"The demo's model {name} is not installed: add 'django_memdb.demo' to INSTALLED_APPS "
                f"(next to 'django_memdb'), run `manage.py migrate`, then `manage.py memdb_demo` again."
            ) from None

    def _command(self) -> tuple[list[str], dict[str, str]]:
        """How to start this command again in a new process, as it was started."""
        env = os.environ.copy()
        script = Path(sys.argv[0])
        if script.name == "manage.py" and script.is_file():
            return [sys.executable, str(script.resolve())], env
        env["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
        return [sys.executable, "-m", "django"], env

    def run_all(self) -> None:
        default = settings.DATABASES["default"]
        self.stdout.write(f"Default database: {default['ENGINE']} {default['NAME']}")
        call_command("migrate", verbosity=0)
        start, env = self._command()
        name = self.__module__.rsplit(".", 1)[-1]
        # Every step is a process of its own; this one never opens the in-memory tables.
        for step in ("reset", "write", "read"):
            if step != "reset":
                self.stdout.write(f"\n--- a new process: {step} ---")
            self.stdout.flush()
            subprocess.run([*start, name, "--step", step], check=True, env=env)

    def write(self, persistent: type[models.Model], ephemeral: type[models.Model]) -> None:
        pid = os.getpid()
        self.stdout.write(f"pid {pid}: in-memory tables start as stored: {persistent._default_manager.count()} rows")
        persistent._default_manager.create(text="written by one process")
        with transaction.atomic(using=conf.MEMDB_NAME):
            persistent._default_manager.bulk_create([persistent(text=f"row {i}") for i in range(3)])
        ephemeral._default_manager.create(text="in memory only, gone at exit")
        self.stdout.write(
            f"pid {pid}: wrote {persistent._default_manager.count()} persistent rows and 1 ephemeral row"
        )
        application, modelname = registry.storage_key(persistent)
        where = {"application": application, "modelname": modelname}
        self.stdout.write(
            f"pid {pid}: stored: {plural(PersistentStorage.objects.filter(**where).count(), 'snapshot row')}, "
            f"{plural(PersistentJournal.objects.filter(**where).count(), 'journal entry', 'journal entries')}; "
            f"exiting"
        )

    def read(self, persistent: type[models.Model], ephemeral: type[models.Model]) -> None:
        texts = list(persistent._default_manager.order_by("id").values_list("text", flat=True))
        self.stdout.write(f"pid {os.getpid()}: restored {len(texts)} persistent rows: {texts}")
        self.stdout.write(f"pid {os.getpid()}: ephemeral rows: {ephemeral._default_manager.count()}")
