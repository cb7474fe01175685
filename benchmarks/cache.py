"""MemDBCache next to Django's cache backends and the usual alternatives, in one table.

Run from the repository root (not part of the test suite)::

    python -m benchmarks.cache [--rounds 5] [--values 20000] [--plot FILE.png] [--skip BACKEND]

Each backend runs in a process of its own (MEMDB_MODE is per process), with
a scratch directory for its files: µs per operation, the median of the
rounds, of ``set``, ``get`` of a present key and ``get`` of a missing key, on
20,000 small dict values. The calls go to the backend itself
(``caches["default"]``, taken once, as a library holding its backend does);
the last column is a ``get`` hit through ``django.core.cache.cache``, whose
per-call lookup of the backend (a thread-local) costs every backend alike.
Then the eviction hit rate with ``MAX_ENTRIES=1000`` on a Zipf-distributed
key stream, MemDBCache (process mode) against
LocMemCache. django-redis (Redis on 127.0.0.1:6379), PyMemcacheCache
(memcached on 127.0.0.1:11211) and django-lrucache-backend are measured when
installed (``pip install -e ".[bench]"``) and reachable, else listed as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import django
from django.conf import settings
from django.core.cache import cache, caches
from django.core.management import call_command

BACKENDS: dict[str, dict[str, Any]] = {
    "MemDBCache, process mode": {"backend": "django_memdb.cache.MemDBCache", "mode": "process"},
    "MemDBCache, host mode": {"backend": "django_memdb.cache.MemDBCache", "mode": "host"},
    "MemDBCache, persistent (interval)": {
        "backend": "django_memdb.cache.MemDBCache", "mode": "process", "options": {"PERSISTENT": True},
    },
    "LocMemCache": {"backend": "django.core.cache.backends.locmem.LocMemCache"},
    "django-lrucache-backend": {"backend": "lrucache_backend.LRUObjectCache", "needs": "lrucache_backend"},
    "DatabaseCache (SQLite file)": {"backend": "django.core.cache.backends.db.DatabaseCache", "location": "cache"},
    "FileBasedCache": {"backend": "django.core.cache.backends.filebased.FileBasedCache", "location": "files"},
    "django-redis": {
        "backend": "django_redis.cache.RedisCache", "location": "redis://127.0.0.1:6379/9",
        "needs": "django_redis", "port": 6379, "unbounded": True,
    },
    "PyMemcacheCache": {
        "backend": "django.core.cache.backends.memcached.PyMemcacheCache", "location": "127.0.0.1:11211",
        "needs": "pymemcache", "port": 11211, "unbounded": True,
    },
}
clock = time.perf_counter


def _configure(spec: dict[str, Any], directory: str, options: dict[str, Any]) -> None:
    location = spec.get("location", "bench")
    if location in ("files",):
        location = os.path.join(directory, location)
    settings.configure(
        SECRET_KEY="benchmark",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django_memdb", "django_memdb.cache"],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(directory, "default.sqlite3")},
            "django_memdb": {"ENGINE": "django_memdb.backend", "NAME": "file:django_memdb?mode=memory&cache=shared"},
        },
        DATABASE_ROUTERS=["django_memdb.dbrouter.MemDB"],
        MEMDB_MODE=spec.get("mode", "process"),
        MEMDB_HOST_DIRECTORY=directory,
        MEMDB_DURABILITY="interval",
        CACHES={"default": {
            "BACKEND": spec["backend"], "LOCATION": location, "TIMEOUT": 3600,
            # Servers take OPTIONS as client arguments: MAX_ENTRIES is for the local backends.
            "OPTIONS": {**spec.get("options", {}), **({} if spec.get("unbounded") else options)},
        }},
    )
    django.setup()
    call_command("migrate", verbosity=0)
    if spec["backend"].endswith("DatabaseCache"):
        call_command("createcachetable", verbosity=0)


def child(name: str, rounds: int, values: int, directory: str) -> dict[str, Any]:
    """In a process of its own: the medians of ``rounds`` of each operation, in µs."""
    _configure(BACKENDS[name], directory, {"MAX_ENTRIES": values * 2})
    value = {"id": 1, "name": "a small value", "tags": ["x", "y"], "score": 0.5}
    keys = [f"key:{number}" for number in range(values)]
    missing = [f"missing:{number}" for number in range(values)]
    backend = caches["default"]
    results: dict[str, list[float]] = {"set": [], "get hit": [], "get miss": [], "get hit, proxy": []}
    for _ in range(rounds):
        backend.clear()
        start = clock()
        for key in keys:
            backend.set(key, value)
        results["set"].append((clock() - start) / values * 1e6)
        start = clock()
        for key in keys:
            backend.get(key)
        results["get hit"].append((clock() - start) / values * 1e6)
        start = clock()
        for key in missing:
            backend.get(key)
        results["get miss"].append((clock() - start) / values * 1e6)
        start = clock()
        for key in keys:
            cache.get(key)
        results["get hit, proxy"].append((clock() - start) / values * 1e6)
    assert backend.get(keys[-1]) == value and cache.get(keys[-1]) == value
    backend.clear()
    return {op: statistics.median(times) for op, times in results.items()}


def hit_rate(name: str, directory: str, requests: int = 200_000, universe: int = 20_000) -> float:
    """Read-through with MAX_ENTRIES=1000 on a Zipf (s=1) stream of keys: the share of hits."""
    _configure(BACKENDS[name], directory, {"MAX_ENTRIES": 1000})
    cache.clear()
    rng = random.Random(11)
    weights = [1 / rank for rank in range(1, universe + 1)]
    stream = rng.choices(range(universe), weights=weights, k=requests)
    hits = 0
    for number in stream:
        key = f"k{number}"
        if cache.get(key) is None:
            cache.set(key, number)
        else:
            hits += 1
    return hits / requests


def _available(spec: dict[str, Any]) -> str | None:
    """Why a backend cannot be measured here, or None."""
    needs = spec.get("needs")
    if needs:
        try:
            __import__(needs)
        except ImportError:
            return f"{needs} is not installed (pip install -e '.[bench]')"
    port = spec.get("port")
    if port:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return f"no server on 127.0.0.1:{port}"
    return None


def _run_child(arguments: list[str]) -> Any:
    with tempfile.TemporaryDirectory(prefix="memdb-cache-bench-") as directory:
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.cache", "--child", *arguments, "--directory", directory],
            check=True, capture_output=True, text=True,
        ).stdout
    return json.loads(output.strip().splitlines()[-1])


def plot(rows: dict[str, dict[str, float]], path: str, rounds: int, values: int) -> None:
    import matplotlib  # optional: pip install -e ".[bench]"

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    ops = ["set", "get hit", "get miss"]
    figure, axes = plt.subplots(figsize=(10, 0.5 * len(names) + 1.5))
    height = 0.25
    for index, op in enumerate(ops):
        axes.barh([n + index * height for n in range(len(names))], [rows[name][op] for name in names],
                  height=height, label=op)
    axes.set_yticks([n + height for n in range(len(names))], names)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("µs per operation (log scale; lower is better)")
    axes.set_title(f"Django cache backends: {values:,} small dict values, median of {rounds} rounds")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


RATIOS = [
    # (MemDBCache mode, compared with, what to read)
    ("MemDBCache, process mode", "LocMemCache", "times LocMemCache's time"),
    ("MemDBCache, host mode", "PyMemcacheCache", "times faster than PyMemcacheCache"),
    ("MemDBCache, host mode", "django-redis", "times faster than django-redis"),
    ("MemDBCache, persistent (interval)", "DatabaseCache (SQLite file)", "times faster than DatabaseCache"),
]


def _print_ratios(rows: dict[str, dict[str, float]]) -> None:
    """Absolute µs depend on the machine and its load: ratios within one run travel better."""
    lines = []
    for name, other, reading in RATIOS:
        if name in rows and other in rows:
            ops = ("set", "get hit", "get miss")
            if other == "LocMemCache":
                ratios = {op: rows[name][op] / rows[other][op] for op in ops}
            else:
                ratios = {op: rows[other][op] / rows[name][op] for op in ops}
            cells = ", ".join(f"{op} {ratio:.1f}" for op, ratio in ratios.items())
            lines.append(f"{name}: {cells} ({reading})")
    if lines:
        print("\nRatios in this run:")
        for line in lines:
            print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--values", type=int, default=20_000)
    parser.add_argument("--plot", metavar="FILE.png")
    parser.add_argument("--skip", action="append", default=[], metavar="BACKEND",
                        help="leave this backend out (repeatable), e.g. the slow FileBasedCache")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--hit-rate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result: Any = (
            hit_rate(args.child, args.directory) if args.hit_rate
            else child(args.child, args.rounds, args.values, args.directory)
        )
        print(json.dumps(result))
        return

    rows: dict[str, dict[str, float]] = {}
    print(f"{'backend':<36} {'set':>9} {'get hit':>9} {'get miss':>9} {'get hit via cache':>18}   (µs per operation)")
    for name, spec in BACKENDS.items():
        problem = "--skip" if name in args.skip else _available(spec)
        if problem:
            print(f"{name:<36} skipped: {problem}")
            continue
        rows[name] = _run_child([name, "--rounds", str(args.rounds), "--values", str(args.values)])
        row = rows[name]
        print(f"{name:<36} {row['set']:>9.1f} {row['get hit']:>9.1f} {row['get miss']:>9.1f} "
              f"{row['get hit, proxy']:>18.1f}", flush=True)
    _print_ratios(rows)
    print("\nEviction, MAX_ENTRIES=1000, 200,000 reads of 20,000 keys (Zipf s=1), read-through:")
    for name in ("MemDBCache, process mode", "LocMemCache"):
        rate = _run_child([name, "--hit-rate"])
        print(f"{name:<36} hit rate {rate:.1%}")
    if args.plot:
        plot(rows, args.plot, args.rounds, args.values)
        print(f"\nPlot written to {args.plot}")


if __name__ == "__main__":
    main()
