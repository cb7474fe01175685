"""Persisted writes from several threads of one process under the ``commit`` policy, in one table.

Run from the repository root (not part of the test suite)::

    python -m benchmarks.threads [--seconds 5] [--threads 1,8] [--databases sqlite,postgresql,mariadb]
                                 [--ceilings] [--pin CPU]

Each thread creates rows of a persistent model one by one, each create
returning once its row is stored (policy ``commit``). With group commit,
the commits of threads that write at once share one transaction (and one
disk sync) of the default database, so more threads store more rows per
second. Every count runs in a child process of the test project on a
scratch default database (the SQLite one a file under $TMPDIR, so that its
commits pay for the disk's fsync).

``--ceilings`` also times the same creates in memory only and plain on the
default database: what one process's threads reach without storage, and
with Django alone.

``--pin CPU`` runs each measuring process on that CPU only (Linux,
``os.sched_setaffinity``): its threads then hand the interpreter lock to
each other on one CPU instead of waking each other up on another.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.bench import MARK, ROOT, migrate, progress, scratch_database, table

clock = time.perf_counter


class Writes:
    """Counts the group commit's writes to storage: how many, and how long one was under way.

    Wraps the coordinator's methods in the child (a benchmark may look inside):
    a write starts when a thread becomes the writer of a batch and ends when
    the threads it stored wake up.
    """

    def __init__(self) -> None:
        from django_memdb.group_commit import GroupCommit

        self.count, self.busy, self.measuring = 0, 0.0, False
        self._started: dict[int, float] = {}
        begin_now, begin, end = GroupCommit.begin_now, GroupCommit.begin, GroupCommit.end

        def started(number: int | None) -> int | None:
            if number is not None:
                self._started[number] = clock()
            return number

        def ended(group: GroupCommit, number: int, stored: bool, leftover: Any = None) -> None:
            since = self._started.pop(number, None)
            if self.measuring and stored and since is not None:
                self.count += 1
                self.busy += clock() - since
            end(group, number, stored, leftover)

        GroupCommit.begin_now = lambda group: started(begin_now(group))  # type: ignore[method-assign,assignment]
        GroupCommit.begin = lambda group, ticket: started(begin(group, ticket))  # type: ignore[method-assign,assignment]
        GroupCommit.end = ended  # type: ignore[method-assign,assignment]


def child(params: dict[str, Any]) -> dict[str, float]:
    """Inside the test project: creates per second with ``threads`` threads for ``seconds``."""
    import django

    if params.get("pin") is not None:  # before any thread starts: they inherit it
        os.sched_setaffinity(0, {params["pin"]})
    django.setup()
    from django.db import connections

    from django_memdb import lifecycle
    from tests import models

    model = getattr(models, MODELS[params.get("create", "persisted")])
    writes = Writes()
    lifecycle.current_database()
    for number in range(50):
        model.objects.create(name=f"warm {number}", value=number)
    count, seconds = params["threads"], params["seconds"]
    done = [0] * count
    start, stop = threading.Barrier(count + 1), threading.Event()

    def writer(index: int) -> None:
        start.wait()
        try:
            while not stop.is_set():
                model.objects.create(name=f"t{index}", value=done[index], group=index)
                done[index] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    start.wait()
    writes.measuring = True
    started, cpu = clock(), time.process_time()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed, cpu = clock() - started, time.process_time() - cpu
    writes.measuring = False
    total = max(1, sum(done))
    return {
        "creates_per_s": sum(done) / elapsed, "cpu_us": cpu / total * 1e6,
        "rows_per_write": total / max(1, writes.count), "writer_busy": writes.busy / elapsed,
    }


# What a thread creates: the persisted model, and for --ceilings the same fields in memory
# only (nothing stored) and on the default database (Django alone).
MODELS = {"persisted": "Counter", "in memory only": "CounterMemory", "plain, default database": "CounterPlain"}


def run_one(
    env: dict[str, str], threads: int, seconds: float, create: str = "persisted", pin: int | None = None
) -> dict[str, float]:
    params = json.dumps({"threads": threads, "seconds": seconds, "create": create, "pin": pin})
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.threads", "--child", params], cwd=ROOT, capture_output=True,
        text=True, env=dict(env, MEMDB_TEST_DURABILITY="commit"),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{threads} threads failed: {done.stderr.strip().splitlines()[-1:]}")
    return {key: float(value) for key, value in json.loads(lines[-1][len(MARK):]).items()}


def run(
    kinds: Sequence[str], counts: Sequence[int], seconds: float, ceilings: bool = False, pin: int | None = None
) -> str:
    rows = []
    creates = list(MODELS) if ceilings else ["persisted"]
    for kind in kinds:
        for create in creates:
            measured = {}
            for threads in counts:
                progress(f"{kind}, {create}, {threads} thread(s)")
                with scratch_database(kind) as env:
                    migrate(env)
                    measured[threads] = run_one(env, threads, seconds, create, pin)
            base = measured[counts[0]]["creates_per_s"]
            for threads in counts:
                rate, persisted = measured[threads]["creates_per_s"], create == "persisted"
                rows.append([
                    f"{kind}" + (" (file under $TMPDIR)" if kind == "sqlite" else ""),
                    *([create] if ceilings else []), str(threads), f"{rate:,.0f}", f"{rate / base:.2f}x",
                    f"{measured[threads]['cpu_us']:,.0f}",
                    f"{measured[threads]['rows_per_write']:.1f}" if persisted else "-",
                    f"{measured[threads]['writer_busy']:.0%}" if persisted else "-",
                ])
    headers = [
        "default database", *(["create"] if ceilings else []), "threads", "creates/s",
        f"vs {counts[0]} thread(s)", "CPU µs/create", "rows/write", "writing",
    ]
    return (
        f"Persisted creates per second, policy commit, {seconds:g} s per count "
        f"(one run; machine: {os.cpu_count()} CPUs"
        + (f"; each process pinned to CPU {pin}" if pin is not None else "")
        + ")\n\n" + table(headers, rows) + "\n\n"
        "CPU µs/create: the process's CPU time (user + system) per create; rows/write: creates per\n"
        "write to storage (group commit); writing: share of the time a write was under way."
        + (
            "\nin memory only: the same fields, nothing stored; plain, default database: Django alone."
            if ceilings else ""
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per count (default 5)")
    parser.add_argument("--threads", default="1,8", help="thread counts, comma-separated (default 1,8)")
    parser.add_argument(
        "--databases", default="sqlite,postgresql,mariadb", help="default databases, comma-separated"
    )
    parser.add_argument(
        "--ceilings", action="store_true",
        help="also time creates in memory only and plain creates on the default database",
    )
    parser.add_argument(
        "--pin", type=int, metavar="CPU", help="run each measuring process on this CPU only (Linux)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(MARK + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    kinds = [kind.strip() for kind in args.databases.split(",")]
    counts = [int(count) for count in args.threads.split(",")]
    print(run(kinds, counts, args.seconds, args.ceilings, args.pin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
