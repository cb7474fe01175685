"""``manage.py memdb_verify``: compare memory with storage, row by row."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from ...exceptions import MemDBError
from ...inspection import orphan_message, orphans, plural, progress_to, resolve_models, verify


class Command(BaseCommand):
    help = (
        "Compare each persistent in-memory table of this process (or the --model tables) "
        "with what a restore would load from storage. Exits non-zero on any difference; "
        "changes not flushed yet count as one unless --flush stores them first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--model", action="append", metavar="app_label.ModelName",
            help="Verify only this table (repeat for several).",
        )
        parser.add_argument("--flush", action="store_true", help="Flush pending changes first.")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            selected = resolve_models(options["model"])
            checks = verify(selected, flush=options["flush"], progress=progress_to(self.stdout))
            unknown = [] if options["model"] else orphans()
        except (MemDBError, DatabaseError) as exc:
            raise CommandError(str(exc)) from exc
        differing = [check for check in checks if not check.ok]
        if options["json"]:
            self.stdout.write(json.dumps(
                {"ok": not differing and not unknown, "tables": [c.as_json() for c in checks], "orphans": unknown},
                indent=2,
            ))
        elif options["verbosity"]:
            for check in checks:
                self.stdout.write(check.summary())
            for name in unknown:
                self.stdout.write(orphan_message(name))
        if differing or unknown:
            names = ", ".join([c.model for c in differing] + unknown)
            raise CommandError(
                f"Memory and storage differ for {names}. To reload memory from storage: "
                f"`manage.py memdb_restore --model <model>`; to store memory: "
                f"`manage.py memdb_spool --model <model>`."
            )
        if not options["json"] and options["verbosity"]:
            self.stdout.write(f"{plural(len(checks), 'table')} verified: no difference.")
