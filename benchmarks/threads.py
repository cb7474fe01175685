"""Persisted writes from several threads of one process under the ``commit`` policy, in one table.

Run from the repository root (not part of the test suite)::

    python -m benchmarks.threads [--seconds 5] [--threads 1,8] [--databases sqlite,postgresql,mariadb]

Each thread creates rows of a persistent model one by one, each create
returning once its row is stored (policy ``commit``). With group commit,
the commits of threads that write at once share one transaction (and one
disk sync) of the default database, so more threads store more rows per
second. Every count runs in a child process of the test project on a
scratch default database (the SQLite one a file under $TMPDIR, so that its
commits pay for the disk's fsync).
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


def child(params: dict[str, Any]) -> dict[str, float]:
    """Inside the test project: creates per second with ``threads`` threads for ``seconds``."""
    import django

    django.setup()
    from django.db import connections

    from django_memdb import lifecycle
    from tests.models import Counter

    lifecycle.current_database()
    for number in range(50):
        Counter.objects.create(name=f"warm {number}", value=number)
    count, seconds = params["threads"], params["seconds"]
    done = [0] * count
    start, stop = threading.Barrier(count + 1), threading.Event()

    def writer(index: int) -> None:
        start.wait()
        try:
            while not stop.is_set():
                Counter.objects.create(name=f"t{index}", value=done[index], group=index)
                done[index] += 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    start.wait()
    started, cpu = clock(), time.process_time()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed, cpu = clock() - started, time.process_time() - cpu
    return {"creates_per_s": sum(done) / elapsed, "cpu_us": cpu / max(1, sum(done)) * 1e6}


def run_one(env: dict[str, str], threads: int, seconds: float) -> dict[str, float]:
    params = json.dumps({"threads": threads, "seconds": seconds})
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.threads", "--child", params], cwd=ROOT, capture_output=True,
        text=True, env=dict(env, MEMDB_TEST_DURABILITY="commit"),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{threads} threads failed: {done.stderr.strip().splitlines()[-1:]}")
    return {key: float(value) for key, value in json.loads(lines[-1][len(MARK):]).items()}


def run(kinds: Sequence[str], counts: Sequence[int], seconds: float) -> str:
    rows = []
    for kind in kinds:
        measured = {}
        for threads in counts:
            progress(f"{kind}, {threads} thread(s)")
            with scratch_database(kind) as env:
                migrate(env)
                measured[threads] = run_one(env, threads, seconds)
        base = measured[counts[0]]["creates_per_s"]
        for threads in counts:
            rate = measured[threads]["creates_per_s"]
            rows.append([
                f"{kind}" + (" (file under $TMPDIR)" if kind == "sqlite" else ""), str(threads),
                f"{rate:,.0f}", f"{rate / base:.2f}x", f"{measured[threads]['cpu_us']:,.0f}",
            ])
    headers = ["default database", "threads", "creates/s", f"vs {counts[0]} thread(s)", "CPU µs/create"]
    return (
        f"Persisted creates per second, policy commit, {seconds:g} s per count "
        f"(one run; machine: {os.cpu_count()} CPUs)\n\n" + table(headers, rows)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per count (default 5)")
    parser.add_argument("--threads", default="1,8", help="thread counts, comma-separated (default 1,8)")
    parser.add_argument(
        "--databases", default="sqlite,postgresql,mariadb", help="default databases, comma-separated"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(MARK + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    kinds = [kind.strip() for kind in args.databases.split(",")]
    counts = [int(count) for count in args.threads.split(",")]
    print(run(kinds, counts, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
