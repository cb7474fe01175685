"""``manage.py memdb_status``: every in-memory table, in memory and in storage."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...inspection import Status, TableStatus, format_age, format_size, orphan_message, plural, status

COLUMNS = ("model", "persisted", "memory", "snapshot", "size", "age", "journal", "pending", "state")


class Command(BaseCommand):
    help = (
        "Show each in-memory table of this process: rows in memory, its stored snapshot "
        "(rows, size, age) and journal, changes not flushed yet, and restore failures."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the status as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = status()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_json(), indent=2))
        else:
            self.stdout.write(render(report))


def _row(table: TableStatus) -> tuple[str, ...]:
    if not table.persistent:
        stored: tuple[str, ...] = ("no", "-", "-", "-", "-")
    else:
        if not table.snapshot_count:
            snapshot = "-"
        else:  # 0.0.6 snapshots do not record their rows
            snapshot = "?" if table.snapshot_rows is None else str(table.snapshot_rows)
        stored = (
            "yes",
            snapshot,
            format_size(table.snapshot_bytes),
            format_age(table.snapshot_age_seconds),
            f"{table.journal_entries} ({plural(table.journal_rows, 'row')})" if table.journal_entries else "0",
        )
    memory = "no table" if table.memory_rows is None else str(table.memory_rows)
    state = "RESTORE FAILED" if table.restore_error else "STORED DATA UNREADABLE" if table.stored_error else "ok"
    return (table.model, stored[0], memory, *stored[1:], str(table.pending), state)


def _writer(writer: dict[str, Any] | None) -> str:
    if writer is None:
        return "none yet (no process has written storage)"
    who = "this process" if writer["this_process"] else f"pid {writer['pid']} on {writer['host']}"
    state = "lease until" if writer["active"] else "lease expired at"
    return f"{who}, {state} {writer['expires']:%Y-%m-%d %H:%M:%S %Z}"


MODES = {
    "process": "each process has its own in-memory database; shown: this command's",
    "host": "the processes of this host share one in-memory database",
    "cluster": "every process shares the in-memory tables on the database server",
}


def render(report: Status) -> str:
    """The status as a text table with the settings above it and problems below."""
    lines = [
        f"Mode: {report.mode} ({MODES.get(report.mode, MODES['process'])})",
        f"Durability: {report.durability}"
        + (f" (every {report.flush_interval:g} s)" if report.durability == "interval" else ""),
        f"In-memory database: {report.memory_database}; storage database: {report.storage_database}",
        f"Writer: {_writer(report.writer)}",
        f"Flush error: {report.flush_error or 'none'}",
        "",
    ]
    table = [tuple(c.upper() for c in COLUMNS), *(_row(t) for t in report.tables)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines.extend(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip() for row in table
    )
    if not report.tables:
        lines.append("(no in-memory models)")
    problems = [
        f"{t.model}: {t.restore_error or t.stored_error}" for t in report.tables if t.restore_error or t.stored_error
    ]
    if report.storage_error:
        problems.append(report.storage_error)
    problems.extend(orphan_message(name) for name in report.orphans)
    if problems:
        lines.extend(["", "Problems:", *(f"- {problem}" for problem in problems)])
    return "\n".join(lines)
