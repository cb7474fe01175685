"""A persistent in-memory table surviving a process restart, shown in three processes."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management import BaseCommand, call_command
from django.db import transaction

from django_memdb.models import PersistentJournal, PersistentStorage
from tests.models import Ephemeral, Persistent


class Command(BaseCommand):
    help = "Show a persistent in-memory table surviving a restart (uses the default database)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--step", choices=["reset", "write", "read"], help="run one step only")

    def handle(self, *args: Any, step: str | None = None, **options: Any) -> None:
        if step == "reset":
            Persistent.objects.all().delete()  # start the demo from an empty table
        elif step == "write":
            self.write()
        elif step == "read":
            self.read()
        else:
            self.run_all()

    def run_all(self) -> None:
        default = settings.DATABASES["default"]
        self.stdout.write(f"Default database: {default['ENGINE']} {default['NAME']}")
        call_command("migrate", verbosity=0)
        # Every step is a process of its own; this one never opens the in-memory tables.
        for step in ("reset", "write", "read"):
            if step != "reset":
                self.stdout.write(f"\n--- a new process: {step} ---")
            subprocess.run(
                [sys.executable, "manage.py", "demo", "--step", step],
                check=True, env=os.environ.copy(), cwd=settings.BASE_DIR,
            )

    def write(self) -> None:
        self.stdout.write(f"pid {os.getpid()}: in-memory tables start as stored: {Persistent.objects.count()} rows")
        Persistent.objects.create(text="written by one process")
        with transaction.atomic(using="django_memdb"):
            Persistent.objects.bulk_create([Persistent(text=f"row {i}") for i in range(3)])
        Ephemeral.objects.create(text="in memory only, gone at exit")
        self.stdout.write(f"pid {os.getpid()}: wrote {Persistent.objects.count()} persistent rows and 1 ephemeral row")
        self.stdout.write(
            f"pid {os.getpid()}: stored: {PersistentStorage.objects.count()} snapshot row, "
            f"{PersistentJournal.objects.count()} journal entries; exiting"
        )

    def read(self) -> None:
        texts = list(Persistent.objects.order_by("id").values_list("text", flat=True))
        self.stdout.write(f"pid {os.getpid()}: restored {len(texts)} persistent rows: {texts}")
        self.stdout.write(f"pid {os.getpid()}: ephemeral rows: {Ephemeral.objects.count()}")
