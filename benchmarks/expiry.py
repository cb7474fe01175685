"""Purging expired rows: the longest pause another thread sees, and the purge throughput.

Run from the repository root (not part of the test suite)::

    python -m benchmarks.expiry [--rows 100000] [--model token|grant|both]

``token`` is a persistent model (each purge batch is journaled to the default
database, a SQLite file under $TMPDIR); ``grant`` is in memory only and has a
cascading foreign key pointing at it. While the rows are purged, another thread
reads a different in-memory table in a loop, as the requests of a server would;
its slowest read is the longest pause the purge caused (the target is 50 ms).
The load average of the machine is printed: the pauses depend on it.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import pause_trace

ROOT = Path(__file__).resolve().parent.parent


def _setup(directory: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["MEMDB_TEST_DATABASE"] = "sqlite"
    os.environ["MEMDB_TEST_DB_NAME"] = os.path.join(directory, "default.sqlite3")
    # Only the purge measured here runs: no purger thread, no purge by the reads.
    os.environ["MEMDB_TEST_EXPIRY_INTERVAL"] = "3600"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def run(rows: int, model_name: str, trace: bool = False) -> dict[str, Any]:
    from django.utils import timezone

    from django_memdb import compaction, expiry
    from tests.expiry_app.models import Grant, Latest, Token

    model = Token if model_name == "token" else Grant
    if not Latest.objects.exists():
        Latest.objects.create(text="read by the other thread")
    old = timezone.now() - datetime.timedelta(days=1)
    expiry._local.purging = True  # written already expired: this thread's writes must not purge them
    try:
        for start in range(0, rows, 10_000):
            # Not kept: 10,000 instances left in a variable would lengthen every full collection.
            end = min(rows, start + 10_000)
            model.objects.bulk_create([model(text=str(n), created=old) for n in range(start, end)])
    finally:
        expiry._local.purging = False

    alone: list[float] = []
    pauses: list[float] = []
    starts: list[float] = []  # of the reads in ``pauses``
    into = [alone]
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            began = time.perf_counter()
            Latest.objects.filter(text="read by the other thread").exists()
            into[0].append(time.perf_counter() - began)
            if into[0] is pauses:
                starts.append(began)

    recorder = pause_trace.Trace() if trace else None
    if recorder:
        # gc.get_objects() must not run beside another thread's work: it can expose a tuple under construction.
        compaction.wait_idle(60.0)
        tracked_before = pause_trace.tracked_by_type()
    thread = threading.Thread(target=reader, name="reader")
    thread.start()
    time.sleep(2.0)  # the reader alone: how long the machine itself stalls it
    into[0] = pauses
    began = time.perf_counter()
    with recorder.recording() if recorder else contextlib.nullcontext():
        purged = expiry.purge(model)
        seconds = time.perf_counter() - began
        if recorder:
            compaction.wait_idle(30.0)  # a compaction the purge started: its collections count too
    done.set()
    thread.join()
    assert purged == rows and model.objects.count() == 0, (purged, rows)
    if recorder:
        _print_trace(recorder, tracked_before, list(zip(starts, pauses, strict=False)))
    return {
        "rows": rows,
        "purge_seconds": seconds,
        "rows_per_second": rows / seconds,
        "longest_pause_ms": max(pauses) * 1000,
        "median_read_ms": statistics.median(pauses) * 1000,
        "p99_read_ms": statistics.quantiles(pauses, n=100)[98] * 1000,
        "reads": len(pauses),
        "longest_alone_ms": max(alone) * 1000,
    }


# A read at least this long is listed by --trace with what it overlapped.
LONG_READ = 0.020


def _print_trace(
    recorder: pause_trace.Trace, before: tuple[int, list[tuple[str, int]]], reads: list[tuple[float, float]]
) -> None:
    after = pause_trace.tracked_by_type()
    print(f"  objects tracked by the collector: {before[0]:,} before the purge, {after[0]:,} after")
    print(f"  most frequent before: {', '.join(f'{name} {count:,}' for name, count in before[1][:8])}")
    for line in recorder.summary():
        print(f"  {line}")
    for began, took in reads:
        if took >= LONG_READ:
            what = recorder.overlapping(began, began + took) or ["nothing recorded"]
            print(f"  read of {1000 * took:.1f} ms overlapped: {'; '.join(what)}")


def check_costs(model_name: str, times: int = 20_000) -> tuple[float, float]:
    """Microseconds added to each ORM use of an expiring model with nothing expired: (table unchanged, changed).

    The first is the common case (the lookup is skipped); the second is the
    indexed lookup done after any row of the database changed.
    """
    from django_memdb import expiry
    from tests.expiry_app.models import Grant, Token

    model = Token if model_name == "token" else Grant
    model.objects.create(text="fresh")

    def per_call(function: Callable[[], object]) -> float:
        began = time.perf_counter()
        for _ in range(times):
            function()
        return (time.perf_counter() - began) / times * 1e6

    unchanged = per_call(lambda: expiry.before_use(model))
    expiry.before_use(model)
    changed = per_call(lambda: (expiry._clear.clear(), expiry.before_use(model)))
    return unchanged, changed


LABELS = {"grant": "grant (in memory only)", "token": "token (persistent)"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.expiry", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--model", choices=("token", "grant", "both"), default="both")
    parser.add_argument(
        "--trace", action="store_true",
        help="list the collections and library steps each long read overlapped, and the objects the GC tracks",
    )
    options = parser.parse_args(argv)
    directory = tempfile.mkdtemp()
    # Registered before Django's: removed after the exit flush of django-memdb.
    atexit.register(shutil.rmtree, directory, True)
    _setup(directory)
    from django_memdb import pacing

    names = ("grant", "token") if options.model == "both" else (options.model,)
    print(
        f"purge of {options.rows:,} expired rows; slices of at most {pacing.SLICE_SECONDS * 1000:.0f} ms; "
        f"load average before: {', '.join(f'{load:.1f}' for load in os.getloadavg())} ({os.cpu_count()} cores)"
    )
    header = (
        f"{'model':<24} {'rows/s':>8} {'seconds':>8} {'reads':>7} {'p50 ms':>7} {'p99 ms':>7} {'longest ms':>10}"
        f" {'no purge':>9}"
    )
    print(header)
    for name in names:
        result = run(options.rows, name, options.trace)
        print(
            f"{LABELS[name]:<24} {result['rows_per_second']:>8,.0f} {result['purge_seconds']:>8.2f} "
            f"{result['reads']:>7,} {result['median_read_ms']:>7.2f} {result['p99_read_ms']:>7.1f} "
            f"{result['longest_pause_ms']:>10.1f} {result['longest_alone_ms']:>9.1f}"
        )
    print(f"load average after: {', '.join(f'{load:.1f}' for load in os.getloadavg())}; target: longest <= 50 ms")
    print("no purge: the longest read of the same thread in the 2 s before the purge (the machine's own stalls)")
    for name in names:
        unchanged, changed = check_costs(name)
        print(
            f"added to each ORM use of {name} with nothing expired: {unchanged:.1f} µs "
            f"({changed:.1f} µs after a change to the database)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
