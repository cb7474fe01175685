"""``manage.py memdb_spool``: store pending changes and rewrite snapshots now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from ...exceptions import MemDBError
from ...inspection import compact, plural, progress_to, resolve_models
from ...rewrite import rewrite


class Command(BaseCommand):
    help = (
        "Flush the changes not stored yet, then rewrite the snapshot of each persistent "
        "table (or of the --model tables) from this process's memory and empty its journal."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--model", action="append", metavar="app_label.ModelName",
            help="Compact only this table (repeat for several).",
        )
        parser.add_argument(
            "--rewrite", action="store_true",
            help=(
                "Re-encode the stored data with the store_save processors connected now, once memory "
                "is checked to match storage and the processors of now to read back what they write; "
                "otherwise nothing is changed."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            selected = resolve_models(options["model"])
            if options["rewrite"]:
                flushed, rewritten = rewrite(selected, progress=progress_to(self.stdout))
                if options["verbosity"]:
                    self.stdout.write(f"Flushed {plural(flushed, 'changed row')}.")
                    for each in rewritten:
                        self.stdout.write(each.summary())
                return
            flushed, results = compact(selected, progress=progress_to(self.stdout))
        except (MemDBError, DatabaseError) as exc:
            raise CommandError(str(exc)) from exc
        done = [r for r in results if not r.skipped]
        if options["verbosity"]:
            self.stdout.write(f"Flushed {plural(flushed, 'changed row')}.")
            for result in done:
                self.stdout.write(result.summary())
        skipped = [r for r in results if r.skipped]
        if skipped:
            raise CommandError("Not compacted:\n" + "\n".join(r.summary() for r in skipped))
