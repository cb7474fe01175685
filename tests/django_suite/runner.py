"""Fetch Django's test suite for the installed Django, run it on stock SQLite and on the engine, compare.

Both runs use the same project: Django's test settings plus django-memdb installed
as documented (the app, its in-memory alias and its router). Only the ENGINE of
Django's ``default`` and ``other`` aliases differs, so every difference is the
engine's. A test that passes (or is skipped, or fails as expected) on stock
SQLite and does not on the engine fails the run unless known_differences.py
lists it; a listed test that no longer differs fails it too, so the list stays
true.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import django

from tests.django_suite.known_differences import KNOWN
from tests.django_suite.recording import OUTCOMES_ENV, RANK

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".django-suite"

# Not "serializers": it has a timed test that fails on a loaded machine.
LABELS = [
    "aggregation",
    "backends",
    "basic",
    "bulk_create",
    "constraints",
    "delete",
    "delete_regress",
    "expressions",
    "fixtures",
    "get_or_create",
    "indexes",
    "introspection",
    "many_to_many",
    "many_to_one",
    "migrations",
    "model_fields",
    "multiple_database",
    "one_to_one",
    "queries",
    "raw_query",
    "schema",
    "select_for_update",
    "test_utils",
    "transaction_hooks",
    "transactions",
    "update",
]

# What the labels import beyond Django (model_fields' ImageField tests).
REQUIREMENTS = ["Pillow"]

ENGINES = {
    "stock": "django.db.backends.sqlite3",
    "engine": "django_memdb.backend",
}

SETTINGS = '''\
"""Written by tests/django_suite/runner.py: Django's test settings, {name} run."""

from test_sqlite import *  # noqa: F401,F403

DATABASES = {{
    "default": {{"ENGINE": "{engine}", "NAME": ":memory:"}},
    "other": {{"ENGINE": "{engine}", "NAME": ":memory:"}},
    "django_memdb": {{
        "ENGINE": "django_memdb.backend",
        "NAME": "file:django_memdb?mode=memory&cache=shared",
    }},
}}
DATABASE_ROUTERS = ["django_memdb.dbrouter.MemDB"]
TEST_RUNNER = "tests.django_suite.recording.RecordingRunner"
'''


def run(command: list[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def fetch_tests(version: str) -> Path:
    """Django's tests/ directory of ``version``, from its sdist on PyPI (cached)."""
    root = CACHE / f"django-{version}"
    tests = root / "tests"
    if (tests / "runtests.py").exists():
        return tests
    sdist = CACHE / f"django-{version}.tar.gz"
    if not sdist.exists():
        run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             f"django=={version}", "-d", str(CACHE)])
    prefix = f"django-{version}/tests/"
    with tarfile.open(sdist) as archive:
        members = [member for member in archive.getmembers() if member.name.startswith(prefix)]
        if hasattr(tarfile, "data_filter"):  # Python versions with extraction filters
            archive.extractall(CACHE, members=members, filter="data")
        else:
            archive.extractall(CACHE, members=members)
    return tests


def install_requirements() -> Path:
    """The labels' extra packages, in a directory of their own: the virtualenv is left alone."""
    target = CACHE / f"site-packages-py{sys.version_info.major}.{sys.version_info.minor}"
    marker = target / ".installed"
    if marker.exists() and marker.read_text() == " ".join(REQUIREMENTS):
        return target
    run([sys.executable, "-m", "pip", "install", "--quiet", "--upgrade", "--target", str(target), *REQUIREMENTS])
    marker.write_text(" ".join(REQUIREMENTS))
    return target


def run_suite(tests: Path, name: str, labels: list[str], extra_path: Path, verbosity: int) -> dict[str, str]:
    """Run ``labels`` with one engine; the outcome of each test id."""
    module = f"memdb_settings_{name}"
    (tests / f"{module}.py").write_text(SETTINGS.format(name=name, engine=ENGINES[name]))
    outcomes = CACHE / f"outcomes-{name}.json"
    log = CACHE / f"{name}.log"
    outcomes.unlink(missing_ok=True)
    env = {
        **os.environ,
        OUTCOMES_ENV: str(outcomes),
        # After runtests.py's own directory: Django's test apps come first.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(extra_path), str(REPO), os.environ.get("PYTHONPATH")])),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    command = [sys.executable, "runtests.py", f"--settings={module}", "--parallel=1", "--noinput",
               f"--verbosity={verbosity}", *labels]
    print(f"+ {' '.join(command)}  (log: {log})", flush=True)
    with open(log, "w") as output:
        subprocess.run(command, cwd=tests, env=env, stdout=output, stderr=subprocess.STDOUT, check=False)
    if not outcomes.exists():
        sys.stderr.write(log.read_text()[-5000:])
        # Nothing to compare: e.g. the test databases could not be created.
        raise SystemExit(f"Django's suite did not run to its end on {name}: see {log}")
    return dict(json.loads(outcomes.read_text()))


def passed(outcome: str | None) -> bool:
    return outcome is not None and RANK[outcome] == 0


def label_of(test_id: str) -> str:
    # "setUpClass (transactions.tests.X)" names the class in brackets.
    return test_id.rpartition("(")[2].split(".")[0]


@dataclass
class Row:
    run: int = 0
    stock_bad: int = 0
    engine_bad: int = 0
    known: int = 0


@dataclass
class Comparison:
    rows: dict[str, Row] = field(default_factory=dict)
    unexpected: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def compare(stock: dict[str, str], engine: dict[str, str], labels: list[str]) -> Comparison:
    result = Comparison(rows={label: Row() for label in labels})
    for test_id in sorted(set(stock) | set(engine)):
        row = result.rows.setdefault(label_of(test_id), Row())
        row.run += test_id in engine
        row.stock_bad += test_id in stock and not passed(stock[test_id])
        row.engine_bad += test_id in engine and not passed(engine[test_id])
        differs = passed(stock.get(test_id)) and not passed(engine.get(test_id))
        if test_id in KNOWN:
            row.known += 1
            if not differs and test_id in stock:
                result.stale.append(test_id)
        elif differs:
            result.unexpected.append((test_id, stock.get(test_id), engine.get(test_id)))
    return result


def print_table(comparison: Comparison) -> None:
    header = ("label", "tests run", "fail/err stock", "fail/err engine", "known differences")
    lines = [header] + [
        (label, str(row.run), str(row.stock_bad), str(row.engine_bad), str(row.known))
        for label, row in sorted(comparison.rows.items())
    ]
    total = Counter[str]()
    for row in comparison.rows.values():
        total.update(run=row.run, stock=row.stock_bad, engine=row.engine_bad, known=row.known)
    lines.append(("total", str(total["run"]), str(total["stock"]), str(total["engine"]), str(total["known"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in
                        enumerate(zip(line, widths, strict=True))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.django_suite", description=__doc__.split("\n")[0])
    parser.add_argument("labels", nargs="*", default=LABELS, help="Django test labels (default: %(default)s)")
    parser.add_argument("-v", "--verbosity", type=int, default=1, help="runtests.py verbosity, in the logs")
    args = parser.parse_args(argv)
    CACHE.mkdir(exist_ok=True)
    version = django.get_version()
    print(f"Django {version}, Python {sys.version.split()[0]}", flush=True)
    tests = fetch_tests(version)
    extra_path = install_requirements()
    stock = run_suite(tests, "stock", args.labels, extra_path, args.verbosity)
    engine = run_suite(tests, "engine", args.labels, extra_path, args.verbosity)
    comparison = compare(stock, engine, args.labels)
    print()
    print_table(comparison)
    failed = False
    if comparison.unexpected:
        failed = True
        print(f"\n{len(comparison.unexpected)} test(s) pass on stock SQLite and not on django_memdb.backend:")
        for test_id, on_stock, on_engine in comparison.unexpected:
            print(f"  {test_id}: {on_stock} on stock, {on_engine or 'not run'} on the engine")
        print(f"Fix the engine, or list each with its reason in {Path(__file__).with_name('known_differences.py')}.")
    if comparison.stale:
        failed = True
        print(f"\n{len(comparison.stale)} known difference(s) no longer differ; remove them from known_differences.py:")
        for test_id in comparison.stale:
            print(f"  {test_id}")
    if not failed:
        print("\nEvery test that passes on stock SQLite passes on django_memdb.backend, but for the known differences.")
    return 1 if failed else 0
