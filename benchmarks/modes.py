"""What reads and writes cost in each MEMDB_MODE, in one table.

Run from the repository root (not part of the test suite)::

    python -m benchmarks.modes [--ops 500] [--databases postgresql,mariadb]

For each default database (cluster mode needs a server) and mode, child
processes of the test project (``tests.settings_cluster``, whose models fit
MariaDB's MEMORY tables) time single creates of a persistent model under the
``commit`` and ``interval`` policies, creates of an in-memory model that is
not persisted, and reads of one row by primary key. Each configuration gets
a scratch default database of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.bench import MARK, ROOT, migrate, progress, scratch_database, table

MODES = ("process", "host", "cluster")
clock = time.perf_counter


def child(params: dict[str, Any]) -> dict[str, float]:
    """Inside the test project: µs per operation of each kind."""
    import django

    django.setup()
    from tests.cluster_app.models import Entry, Scratchpad

    ops, warmup = params["ops"], params["warmup"]
    for number in range(warmup):
        Entry.objects.create(text=f"warm {number}")
        Scratchpad.objects.create(text=f"warm {number}")

    def per_op(action: Any) -> float:
        started = clock()
        for number in range(ops):
            action(number)
        return (clock() - started) / ops * 1e6

    results = {
        "persisted": per_op(lambda n: Entry.objects.create(text=f"row {n}")),
        "memory": per_op(lambda n: Scratchpad.objects.create(text=f"row {n}")),
    }
    keys = list(Entry.objects.values_list("pk", flat=True))
    random.seed(1)
    results["read"] = per_op(lambda n: Entry.objects.get(pk=random.choice(keys)))
    return results


def run_one(env: dict[str, str], mode: str, policy: str, ops: int) -> dict[str, float]:
    params = json.dumps({"ops": ops, "warmup": max(50, ops // 5)})
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.modes", "--child", params], cwd=ROOT, capture_output=True, text=True,
        env=dict(env, DJANGO_SETTINGS_MODULE="tests.settings_cluster", MEMDB_TEST_APP_MODE=mode,
                 MEMDB_TEST_DURABILITY=policy),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{mode}/{policy} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1][len(MARK):])


def run(kinds: Sequence[str], ops: int) -> str:
    rows = []
    for kind in kinds:
        for mode in MODES:
            with tempfile.TemporaryDirectory(prefix="memdb-modes-") as directory:
                results = {}
                for policy in ("commit", "interval"):
                    progress(f"{kind}, {mode} mode, {policy} policy")
                    # A database of its own for each child: what one stored is not restored by the next.
                    with scratch_database(kind) as env:
                        migrate(env)
                        env["MEMDB_TEST_HOST_DIRECTORY"] = directory
                        results[policy] = run_one(env, mode, policy, ops)
            engine = {"process": "SQLite in the process", "host": "SQLite on tmpfs (WAL)"}.get(
                mode, "UNLOGGED tables" if kind == "postgresql" else "MEMORY tables"
            )
            rows.append([
                f"{mode} ({engine}), storage on {kind}",
                f"{results['commit']['persisted']:.0f}",
                f"{results['interval']['persisted']:.0f}",
                f"{results['commit']['memory']:.0f}",
                f"{results['commit']['read']:.0f}",
            ])
    headers = ["mode", "write, commit", "write, interval", "write, not persisted", "read by pk"]
    return (
        f"µs per operation, {ops} operations each (one run; machine: {os.cpu_count()} CPUs)\n\n"
        + table(headers, rows)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.modes", description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=500, help="timed operations of each kind (default 500)")
    parser.add_argument("--databases", default="postgresql,mariadb", help="default databases, comma-separated")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(MARK + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    kinds = [kind.strip() for kind in args.databases.split(",")]
    unknown = set(kinds) - {"postgresql", "mariadb"}
    if unknown:
        parser.error(f"--databases: cluster mode needs a server: not {', '.join(sorted(unknown))}")
    print(run(kinds, args.ops))
    return 0


if __name__ == "__main__":
    sys.exit(main())
