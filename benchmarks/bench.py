"""What persistence costs: per-write overhead, bulk writes and restart, in one table.

Run from the repository root (not part of the test suite)::

    python -m benchmarks.bench [--quick] [--database sqlite|postgresql|mariadb]
                               [--sizes 10k,100k,1M] [--op-sizes 1k,100k] [--only ops,bulk,restore]

The SQLite default database is a file under $TMPDIR, so its commits pay for
the disk's fsync as a deployment's would. Every measurement runs in a child
process of the test project (``tests.settings``) against a scratch default
database made for the run and removed after it. Children, because the
durability policy is fixed per process (the interval thread starts at first
use) and because a restore only is a restore in a process whose in-memory
database is new. Each child prints its results as JSON on stdout; the parent
collects them into one table.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MARK = "BENCH-RESULT "
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
KINDS = ("sqlite", "postgresql", "mariadb")
clock = time.perf_counter


# Plan of a run


@dataclass
class Plan:
    """Sizes and repetitions; ``--quick`` shrinks them to a smoke run of seconds."""

    op_sizes: tuple[int, int] = (1_000, 100_000)
    ops: int = 1_000
    warmup: int = 200
    block: int = 50
    bulk_rows: int = 10_000
    restore_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    # Restarts with a full journal (one-row entries) for sizes up to this.
    journal_limit: int = 100_000

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            op_sizes=(1_000, 10_000), ops=300, warmup=50, bulk_rows=10_000, restore_sizes=(10_000,),
            journal_limit=10_000,
        )


def parse_count(text: str) -> int:
    """``10000``, ``10k`` or ``1M``."""
    text = text.strip().lower().replace("_", "")
    factor = 1
    if text.endswith("k"):
        factor, text = 1_000, text[:-1]
    elif text.endswith("m"):
        factor, text = 1_000_000, text[:-1]
    return int(float(text) * factor)


def label(count: int) -> str:
    """1000 -> '1k', 1000000 -> '1M': how the issue names sizes."""
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1_000 and count % 1_000 == 0:
        return f"{count // 1_000}k"
    return str(count)


# Child side: runs inside the test project


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()


def _rss_kib() -> int:
    """Resident set size now (second field of /proc/self/statm, in pages)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_KIB


def _peak_rss_kib() -> int:
    """Highest resident set size of this process so far (KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_default() -> None:
    """Empty storage and the plain table before the in-memory database starts, so nothing is restored."""
    from django.db import transaction

    from django_memdb.models import PersistentJournal, PersistentStorage
    from tests.models import CounterPlain

    with transaction.atomic():
        for model in (PersistentJournal, PersistentStorage, CounterPlain):
            model.objects.all().delete()


def _fill(model: Any, rows: int) -> None:
    """Top the table up to ``rows`` rows in one transaction (untimed prefill).

    In memory with one INSERT ... SELECT through the alias, which the capture
    triggers see like any write; on the default database with bulk_create.
    """
    from django.db import connections, router, transaction

    from django_memdb.conf import conf

    missing = rows - model.objects.count()
    if missing <= 0:
        return
    alias = router.db_for_write(model)
    with transaction.atomic(using=alias):
        if alias == conf.MEMDB_NAME:
            connection = connections[alias]
            quote = connection.ops.quote_name
            with connection.cursor() as cursor:
                cursor.execute(
                    "WITH RECURSIVE seq(i) AS "
                    f"(SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {missing:d}) "
                    f"INSERT INTO {quote(model._meta.db_table)} "
                    f"({quote('name')}, {quote('value')}, {quote('group')}) "
                    "SELECT 'fill ' || i, i, i % 10 FROM seq"
                )
        else:
            model.objects.bulk_create(
                [model(name=f"fill {i}", value=i, group=i % 10) for i in range(missing)], batch_size=1_000
            )


def _time_creates(model: Any, count: int, group: int) -> list[float]:
    """Seconds of each of ``count`` Model.objects.create calls."""
    create = model.objects.create
    names = [f"op {group} {i}" for i in range(count)]
    times = []
    for i, name in enumerate(names):
        started = clock()
        create(name=name, value=i, group=group)
        times.append(clock() - started)
    return times


def _timed(action: Callable[[], Any]) -> float:
    gc.collect()
    started = clock()
    action()
    return clock() - started


def _snapshot_version(model: Any) -> Any:
    """Changes whenever a snapshot of ``model`` is (re)written, i.e. at each compaction."""
    from django_memdb.models import PersistentStorage
    from django_memdb.registry import storage_key

    application, modelname = storage_key(model)
    return list(
        PersistentStorage.objects.filter(application=application, modelname=modelname)
        .values_list("id", "inserted")
    )


def child_ops(params: dict[str, Any]) -> dict[str, Any]:
    """Single creates at each size, for the models asked, under this process's policy.

    The models are timed in alternating blocks, so that a burst of noise on a
    shared machine hits all of them alike and their ratios stay meaningful.
    """
    _setup_django()
    from django_memdb import lifecycle, registry, spool, storage
    from django_memdb.conf import conf
    from tests import models

    _reset_default()
    database = lifecycle.current_database()
    chosen = [getattr(models, name) for name in params["models"]]
    ops, block = params["ops"], params["block"]
    results: dict[str, Any] = {
        "policy": conf.MEMDB_DURABILITY, "models": {name: {} for name in params["models"]}
    }
    for rows in params["sizes"]:
        start_rows, versions = {}, {}
        for model in chosen:
            _fill(model, rows)
            _time_creates(model, params["warmup"], group=1)
            if registry.is_persistent(model):
                # Start from an empty journal: with ops <= the snapshot's rows
                # no inline compaction falls in the timing (checked below).
                spool.compact(database, model)
                versions[model] = _snapshot_version(model)
            start_rows[model] = model.objects.count()
        times: dict[Any, list[float]] = {model: [] for model in chosen}
        gc.collect()
        while len(times[chosen[0]]) < ops:
            for model in chosen:
                times[model] += _time_creates(model, min(block, ops - len(times[model])), group=2)
        for model in chosen:
            taken = times[model]
            result: dict[str, Any] = {
                "rows": start_rows[model],
                "mean_us": statistics.fmean(taken) * 1e6,
                "p50_us": statistics.median(taken) * 1e6,
                "max_us": max(taken) * 1e6,
            }
            if model in versions:
                result["compacted_in_timing"] = _snapshot_version(model) != versions[model]
                table_rows = model.objects.count()
                result["compact_s"] = _timed(lambda: spool.compact(database, model))  # noqa: B023
                # One-row entries: compaction runs once per the smaller of the
                # journal's bounds on rows and on entries (storage.journal_limits).
                period = min(storage.journal_limits(table_rows, conf.MEMDB_COMPACT_MIN_ROWS, conf.MEMDB_COMPACT_RATIO))
                result["amortized_us"] = result["mean_us"] + result["compact_s"] * 1e6 / period
            results["models"][model.__name__][str(rows)] = result
    return results


def child_bulk(params: dict[str, Any]) -> dict[str, Any]:
    """bulk_create, update and delete of many rows at once, for each model."""
    _setup_django()
    from django.db.models import F

    from django_memdb import lifecycle
    from tests import models

    _reset_default()
    lifecycle.current_database()
    count = params["rows"]
    results: dict[str, Any] = {}
    for name in params["models"]:
        model = getattr(models, name)
        model.objects.all().delete()
        objects = [model(name=f"bulk {i}", value=i, group=i % 2) for i in range(count)]
        measured = {"bulk_create": _timed(lambda model=model, objects=objects: model.objects.bulk_create(objects))}
        measured["update"] = _timed(lambda model=model: model.objects.all().update(value=F("value") + 1))
        measured["delete"] = _timed(lambda model=model: model.objects.all().delete())
        model.objects.bulk_create([model(name=f"half {i}", value=i, group=i % 2) for i in range(count)])
        measured["delete_half"] = _timed(lambda model=model: model.objects.filter(group=0).delete())
        left = model.objects.count()
        if left != count - (count + 1) // 2:
            raise RuntimeError(f"{name}: {left} rows left after deleting half of {count}")
        results[name] = measured
    return results


def _journal_directly(model: Any, entries: int) -> None:
    """Append ``entries`` one-row journal entries, as that many single-row commits would.

    Written directly (with the package's own encoder) because ``entries``
    real commits would take minutes; each updates an existing row.
    """
    from django.db import connection, transaction
    from django.utils import timezone

    from django_memdb import processors
    from django_memdb.models import PersistentJournal
    from django_memdb.registry import storage_key

    application, modelname = storage_key(model)
    pks = list(model.objects.order_by("pk").values_list("pk", flat=True)[:entries])
    inserted = PersistentJournal._meta.get_field("inserted").get_db_prep_save(timezone.now(), connection)
    rows = []
    for i in range(entries):
        item = {"model": model._meta.label_lower, "pk": pks[i % len(pks)],
                "fields": {"name": f"journal {i}", "value": i, "group": -1}}
        blob, codec = processors.encode(model, [item])
        rows.append((application, modelname, inserted, codec, blob, 1))
    quote = connection.ops.quote_name
    columns = ", ".join(quote(c) for c in ("application", "modelname", "inserted", "codec", "data", "rows"))
    with transaction.atomic(), connection.cursor() as cursor:
        table = quote(PersistentJournal._meta.db_table)
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s)", rows)


def child_prefill(params: dict[str, Any]) -> dict[str, Any]:
    """Store a snapshot of exactly ``rows`` Counter rows (commit policy: flushed at commit).

    With ``journal``, that many one-row journal entries follow it; ``"bound"``:
    the most a table of ``rows`` rows carries before its journal is compacted.
    """
    _setup_django()
    from django.db.models import Count, Sum
    from django.db.models.functions import Length

    from django_memdb import lifecycle, storage
    from django_memdb.conf import conf
    from django_memdb.models import PersistentJournal, PersistentStorage
    from tests.models import Counter

    _reset_default()
    lifecycle.current_database()
    elapsed = _timed(lambda: _fill(Counter, params["rows"]))
    entries = params.get("journal") or 0
    if entries == "bound":
        bounds = storage.journal_limits(params["rows"], conf.MEMDB_COMPACT_MIN_ROWS, conf.MEMDB_COMPACT_RATIO)
        entries = int(min(bounds))
    if entries:
        elapsed += _timed(lambda: _journal_directly(Counter, entries))
    stored = PersistentStorage.objects.filter(application="tests", modelname="Counter")
    journal = PersistentJournal.objects.filter(application="tests", modelname="Counter").aggregate(
        rows=Sum("rows"), entries=Count("id"), size=Sum(Length("data"))
    )
    return {
        "prefill_s": elapsed,
        "snapshot_rows": sum(r or 0 for r in stored.values_list("rows", flat=True)),
        "journal_rows": journal["rows"] or 0,
        "journal_entries": journal["entries"],
        "stored_bytes": (stored.aggregate(n=Sum(Length("data")))["n"] or 0) + (journal["size"] or 0),
    }


def child_restore(params: dict[str, Any]) -> dict[str, Any]:
    """Start Django, then time the first query of Counter, which restores it from storage."""
    started = clock()
    _setup_django()
    setup_s = clock() - started
    from django_memdb import restore
    from tests.models import Counter

    spans: list[float] = []
    original = restore.restore_at_start

    def timed_restore(database: Any) -> None:
        began = clock()
        try:
            original(database)
        finally:
            spans.append(clock() - began)

    restore.restore_at_start = timed_restore  # lifecycle calls it through the module
    rss_before, peak_before = _rss_kib(), _peak_rss_kib()
    began = clock()
    count = Counter.objects.count()
    first_query_s = clock() - began
    rss_after, peak_after = _rss_kib(), _peak_rss_kib()
    restore.restore_at_start = original
    # A new in-memory database holds only what was read from storage; the
    # journal entries (group -1) must have been replayed over the snapshot.
    journaled = Counter.objects.filter(group=-1).count()
    if count != params["rows"] or journaled != params["journal"] or len(spans) != 1:
        raise RuntimeError(
            f"restored {count} rows of {params['rows']}, {journaled} journaled of {params['journal']} "
            f"({len(spans)} restores ran)"
        )
    return {
        "setup_s": setup_s,
        "first_query_s": first_query_s,
        "restore_s": spans[0],
        "rss_before_kib": rss_before,
        "peak_before_kib": peak_before,
        "peak_kib": peak_after,
        "rss_after_kib": rss_after,
    }


CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ops": child_ops,
    "bulk": child_bulk,
    "prefill": child_prefill,
    "restore": child_restore,
}


# Parent side: scratch database, children, table


@contextmanager
def scratch_database(kind: str) -> Iterator[dict[str, str]]:
    """Environment of the children: a default database of their own, dropped afterwards."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", MEMDB_TEST_DATABASE=kind)
    env.setdefault("MEMDB_TEST_LOG_LEVEL", "WARNING")
    if kind == "sqlite":
        directory = tempfile.mkdtemp(prefix="memdb-bench-")
        try:
            env["MEMDB_TEST_DB_NAME"] = os.path.join(directory, "default.sqlite3")
            yield env
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    os.environ["MEMDB_TEST_DATABASE"] = kind
    from tests.databases import default_database  # reads the environment only

    settings = default_database()
    name = f"memdb_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    env["MEMDB_TEST_DB_NAME"] = name
    if kind == "postgresql":
        import psycopg

        def admin(statement: str) -> None:
            with psycopg.connect(
                host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
                dbname="postgres", autocommit=True,
            ) as connection:
                connection.execute(statement)  # type: ignore[arg-type]

        create, drop = f'CREATE DATABASE "{name}"', f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    else:
        import MySQLdb

        def admin(statement: str) -> None:
            connection = MySQLdb.connect(
                host=settings["HOST"], port=int(settings["PORT"]), user=settings["USER"],
                password=settings["PASSWORD"],
            )
            try:
                connection.cursor().execute(statement)
            finally:
                connection.close()

        create, drop = f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4", f"DROP DATABASE IF EXISTS `{name}`"
    admin(create)
    try:
        yield env
    finally:
        admin(drop)


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class ChildFailed(Exception):
    """A child exited with an error; the message is its last line of stderr."""


def run_child(
    name: str, env: dict[str, str], policy: str, params: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """Results of one child and its wall time (interpreter start to exit, flush at exit included)."""
    command = [sys.executable, "-m", "benchmarks.bench", "--child", name, "--params", json.dumps(params)]
    started = clock()
    done = subprocess.run(
        command, cwd=ROOT, env=dict(env, MEMDB_TEST_DURABILITY=policy),
        capture_output=True, text=True,
    )
    wall = clock() - started
    sys.stderr.write(done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        # The package's own log lines say most; otherwise the exception at the end.
        logged = done.stderr.splitlines()
        errors = list(dict.fromkeys(line for line in logged if line.startswith("django_memdb: ")))
        if not errors:
            errors = [line for line in logged if line.strip()][-1:] or [f"exit {done.returncode}"]
        raise ChildFailed(f"{name} ({policy}): " + " | ".join(errors))
    return json.loads(lines[-1][len(MARK):]), wall


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain text, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=False))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(r) for r in rows)])


def _us(value: float) -> str:
    return f"{value:,.1f}"


def _s(value: float) -> str:
    return f"{value:.3f}"


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.1f}"


def _verdict(value: float, limit: float, strict: bool = False) -> str:
    ok = value < limit if strict else value <= limit
    return "yes" if ok else "NO"


def _header(kind: str, plan: Plan, results: dict[str, Any], total_s: float) -> list[str]:
    before, after = results["load"], os.getloadavg()[0]
    return [
        f"django-memdb benchmark: default database {kind}, Python {platform.python_version()}, "
        f"Django {results['django']}, {os.cpu_count()} CPUs, total run {total_s:.0f} s",
        f"1-minute load average {before:.2f} at start, {after:.2f} at end "
        "(other work on the machine skews timings)",
    ]


def _single_creates(plan: Plan, results: dict[str, Any]) -> list[str]:
    small, large = (str(size) for size in plan.op_sizes)
    commit, interval = results["commit"]["models"], results["interval"]["models"]
    out = [
        "",
        f"Single Model.objects.create, µs/op: {plan.ops} per model and size after {plan.warmup} "
        f"warm-up, timed in blocks of {plan.block} alternating between the models of one process",
        "(rows = rows in the table when timing starts; * = a compaction fell inside the timing)",
    ]
    rows = []
    for name, policy, source, what in (
        ("Counter", "commit", commit, "persisted"),
        ("Counter", "interval", interval, "persisted"),
        ("CounterMemory", "-", commit, "memory"),
        ("CounterPlain", "-", commit, "default DB"),
    ):
        for size in (small, large):
            r = source[name][size]
            rows.append([
                f"{name} ({what})", policy, label(int(size)), f"{r['rows']:,}",
                _us(r["mean_us"]) + ("*" if r.get("compacted_in_timing") else ""),
                _us(r["p50_us"]), _us(r["max_us"]),
                _s(r["compact_s"]) if "compact_s" in r else "-",
                _us(r["amortized_us"]) if "amortized_us" in r else "-",
            ])
    out.append(table(
        ["model", "policy", "size", "rows", "mean", "p50", "max", "compaction s", "mean+compaction"], rows
    ))
    out.append(
        "mean+compaction: mean plus one compaction of the table spread over the rows "
        "journaled between two compactions"
    )

    def mean(source: dict[str, Any], name: str, size: str) -> float:
        return float(source[name][size]["mean_us"])

    ratios = [
        (f"commit: persisted({label(int(large))}) / persisted({label(int(small))})",
         mean(commit, "Counter", large) / mean(commit, "Counter", small), 1.5),
        (f"interval: persisted({label(int(large))}) / persisted({label(int(small))})",
         mean(interval, "Counter", large) / mean(interval, "Counter", small), 1.5),
    ]
    for size in (small, large):
        ratios.append((
            f"commit: persisted / (memory + plain) at {label(int(size))}",
            mean(commit, "Counter", size)
            / (mean(commit, "CounterMemory", size) + mean(commit, "CounterPlain", size)),
            1.3,
        ))
    for size in (small, large):
        ratios.append((
            f"interval: persisted / memory at {label(int(size))} (memory timed in the same process)",
            mean(interval, "Counter", size) / mean(interval, "CounterMemory", size),
            1.3,
        ))
    out += ["", "Ratios of mean µs/op"]
    out.append(table(
        ["ratio", "value", "target", "met"],
        [[what, f"{value:.2f}", f"<= {limit}", _verdict(value, limit)] for what, value, limit in ratios],
    ))
    return out


def _bulk(plan: Plan, results: dict[str, Any]) -> list[str]:
    bulk, n = results["bulk"], plan.bulk_rows
    out = ["", f"Bulk writes of {n:,} rows, seconds (commit policy; flush included)"]
    rows = []
    for key, what, limit in (
        ("bulk_create", f"bulk_create {n:,}", None),
        ("update", f"QuerySet.update {n:,}", None),
        ("delete", f"QuerySet.delete {n:,} (table emptied)", None),
        ("delete_half", f"QuerySet.delete {(n + 1) // 2:,} of {n:,}", 0.5),
    ):
        value = bulk["Counter"][key]
        rows.append([
            what, _s(value), _s(bulk["CounterMemory"][key]), _s(bulk["CounterPlain"][key]),
            f"< {limit}" if limit else "-", _verdict(value, limit, strict=True) if limit else "-",
        ])
    out.append(table(["operation", "persisted", "memory", "default DB", "target", "met"], rows))
    return out


def _restarts(results: dict[str, Any]) -> list[str]:
    out = [
        "",
        "Restart: a fresh process restores Counter (3 columns) from storage at its first query",
        "journal = one-row journal entries after the snapshot (the most a table carries before compaction,",
        "storage.journal_limits);",
        "first query = in-memory migrate + restore + count, the target applies to it; "
        "RSS in MiB, nothing subtracted",
    ]
    rows, failures = [], []
    for entry in results["restore"]:
        size, journal = entry["rows"], entry["journal"]
        what = [label(size), label(journal) if journal else "-"]
        if "error" in entry:
            failures.append(f"{' + '.join(what)}: FAILED: {entry['error']}")
            rows.append(what + ["FAILED"] + ["-"] * 12)
            continue
        r, p = entry["result"], entry["prefill"]
        target = {100_000: 1.0, 1_000_000: 10.0}.get(size)
        peak_ratio = r["peak_kib"] / r["rss_after_kib"]
        rows.append([
            *what, f"{p['stored_bytes'] / 2**20:,.1f}", _s(p["prefill_s"]), _s(entry["wall_s"]),
            _s(r["setup_s"]), _s(r["first_query_s"]), _s(r["restore_s"]),
            f"<= {target:g}" if target else "-", _verdict(r["first_query_s"], target) if target else "-",
            _mib(r["rss_before_kib"]), _mib(r["peak_kib"]), _mib(r["rss_after_kib"]),
            f"{peak_ratio:.2f}", _verdict(peak_ratio, 2.0),
        ])
    out.append(table(
        ["rows", "journal", "stored MiB", "prefill s", "child s", "setup s", "first query s", "restore s",
         "target s", "met", "RSS before", "peak RSS", "RSS after", "peak/after", "<= 2x"],
        rows,
    ))
    return out + failures


def report(kind: str, plan: Plan, results: dict[str, Any], total_s: float) -> str:
    out = _header(kind, plan, results, total_s)
    if "commit" in results:
        out += _single_creates(plan, results)
    if "bulk" in results:
        out += _bulk(plan, results)
    if "restore" in results:
        out += _restarts(results)
    return "\n".join(out)


PARTS = ("ops", "bulk", "restore")


def run(kind: str, plan: Plan, parts: Sequence[str] = PARTS) -> str:
    started = clock()
    results: dict[str, Any] = {"load": os.getloadavg()[0]}
    with scratch_database(kind) as env:
        progress(f"migrating a scratch {kind} database")
        migrate(env)
        if "ops" in parts:
            common = {
                "sizes": list(plan.op_sizes), "ops": plan.ops, "warmup": plan.warmup, "block": plan.block
            }
            progress("single creates, commit policy")
            results["commit"], _ = run_child(
                "ops", env, "commit", dict(common, models=["Counter", "CounterMemory", "CounterPlain"])
            )
            progress("single creates, interval policy")
            results["interval"], _ = run_child(
                "ops", env, "interval", dict(common, models=["Counter", "CounterMemory"])
            )
        if "bulk" in parts:
            progress("bulk writes")
            results["bulk"], _ = run_child(
                "bulk", env, "commit",
                {"rows": plan.bulk_rows, "models": ["Counter", "CounterMemory", "CounterPlain"]},
            )
        if "restore" in parts:
            results["restore"] = []
            cases: list[tuple[int, int | str]] = [(size, 0) for size in sorted(plan.restore_sizes)]
            cases += [(size, "bound") for size in sorted(plan.restore_sizes) if size <= plan.journal_limit]
            for size, journal in cases:
                progress(f"restart with {label(size)} rows" + (" + a full journal" if journal else ""))
                case: dict[str, Any] = {"rows": size, "journal": journal}
                try:
                    params = {"rows": size, "journal": journal}
                    case["prefill"], _ = run_child("prefill", env, "commit", params)
                    stored = case["prefill"]
                    if stored["snapshot_rows"] != size or (journal == 0 and stored["journal_entries"]):
                        raise ChildFailed(f"prefill stored {stored} instead of {size} rows, {journal} entries")
                    case["journal"] = params["journal"] = stored["journal_entries"]
                    case["result"], case["wall_s"] = run_child("restore", env, "commit", params)
                except ChildFailed as exc:
                    # Keep what was measured; the table shows the failure.
                    case["error"] = str(exc)
                results["restore"].append(case)
        progress(f"dropping the scratch {kind} database")
    import django

    results["django"] = django.get_version()
    return report(kind, plan, results, clock() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--database", choices=KINDS, default="sqlite", help="default database (default: sqlite)")
    parser.add_argument("--sizes", help="restart sizes (default 10k,100k,1M; --quick: 10k)")
    parser.add_argument("--op-sizes", help="two table sizes for single creates (default 1k,100k; --quick: 1k,10k)")
    parser.add_argument("--ops", type=int, help="timed creates per model and size (default 1000; --quick: 300)")
    parser.add_argument("--only", help=f"comma-separated parts to run, of {','.join(PARTS)}")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = CHILDREN[args.child](json.loads(args.params))
        print(MARK + json.dumps(result), flush=True)
        return 0
    plan = Plan.quick() if args.quick else Plan()
    if args.sizes:
        plan.restore_sizes = tuple(parse_count(x) for x in args.sizes.split(","))
    if args.op_sizes:
        small, large = (parse_count(x) for x in args.op_sizes.split(","))
        plan.op_sizes = (small, large)
    if args.ops:
        plan.ops = args.ops
    parts = PARTS if not args.only else tuple(p.strip() for p in args.only.split(","))
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown parts {', '.join(sorted(unknown))}")
    print(run(args.database, plan, parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
