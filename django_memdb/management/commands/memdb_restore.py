"""``manage.py memdb_restore``: reload in-memory tables from storage, or check that they would load."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from ...exceptions import MemDBError
from ...inspection import dry_run, orphan_message, orphans, progress_to, replace, resolve_models


class Command(BaseCommand):
    help = (
        "Replace the contents of each persistent in-memory table of this process (or of "
        "the --model tables) with what storage holds: the newest snapshot and its journal. "
        "Changes not stored yet are flushed first. With --dry-run, only decode and check "
        "the stored data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--model", action="append", metavar="app_label.ModelName",
            help="Restore only this table (repeat for several).",
        )
        parser.add_argument(
            "--dry-run", action="store_true",
            help="Decode the stored data and check that every row fits its model; change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry = options["dry_run"]
        try:
            selected = resolve_models(options["model"])
            progress = progress_to(self.stdout)
            results = dry_run(selected, progress) if dry else replace(selected, progress)
            unknown = [] if options["model"] else orphans()
        except (MemDBError, DatabaseError) as exc:
            raise CommandError(str(exc)) from exc
        if options["verbosity"]:
            for result in results:
                if not result.error:
                    self.stdout.write(result.summary(done=not dry))
        problems = [result.summary(done=not dry) for result in results if result.error]
        problems.extend(orphan_message(name) for name in unknown)
        if problems:
            what = "would fail" if dry else "failed; memory of those tables was left as it was"
            raise CommandError(f"Restore {what}:\n" + "\n".join(problems))
        if dry and options["verbosity"]:
            self.stdout.write("Dry run: nothing was changed.")
