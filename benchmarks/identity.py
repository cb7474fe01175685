"""What the identity map saves on reads and costs on writes and memory, in one table.

Run from the repository root (not part of the test suite)::

    python -m benchmarks.identity [--rows 10000] [--ops 20000] [--rss-rows 100000]

Children of the test project (``tests.settings``, a scratch SQLite default
database each) time, in µs per operation (best of three runs), reads by
primary key of a plain model of the default database, of an in-memory model
without the map (``CounterMemory``) and of its twin with the map
(``CounterMapped``: per-thread map, weak references, the defaults), cold
(each row read for the first time) and warm (the instances are held by the
project, as weak references need), also after a request ended; the forward
foreign key ``city.country`` to a mapped model; and writes with and without
the map. The reads run in process mode and in host mode (``PRAGMA
data_version`` before each read from the map). Two more children load 100k
rows, held in a list without the map and by a strong map only, and report
the growth of their resident set size. django-idmap (dead since Django 3) is
measured too when it is installed, with two shims made here only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.bench import MARK, ROOT, _rss_kib, migrate, progress, scratch_database, table

clock = time.perf_counter


def _best(action: Callable[[int], Any], ops: int, repeats: int = 3) -> float:
    """µs per call of ``action(n)``, the best of ``repeats`` runs of ``ops`` calls."""
    best = float("inf")
    for _ in range(repeats):
        started = clock()
        for number in range(ops):
            action(number)
        best = min(best, (clock() - started) / ops * 1e6)
    return best


def _pair(first: Callable[[int], Any], second: Callable[[int], Any], ops: int, rounds: int = 5) -> tuple[float, float]:
    """µs per call of each, measured in alternating runs (the best of each): a busy machine slows both alike."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for index, action in enumerate((first, second)):
            started = clock()
            for number in range(ops):
                action(number)
            best[index] = min(best[index], (clock() - started) / ops * 1e6)
    return best[0], best[1]


def _fill(model: Any, rows: int, **fields: Any) -> list[int]:
    batch = [model(name=f"row {number}", **fields) for number in range(rows)]
    model.objects.bulk_create(batch, batch_size=2000)
    return list(model.objects.order_by("pk").values_list("pk", flat=True))


def child_reads(params: dict[str, Any]) -> dict[str, float]:
    import django

    django.setup()
    from django.core.signals import request_finished, request_started

    from django_memdb import identity
    from tests.models import City, CounterMapped, CounterMemory, CounterPlain, Country

    rows, ops = params["rows"], params["ops"]
    random.seed(1)
    keys = {model: _fill(model, rows) for model in (CounterPlain, CounterMemory, CounterMapped)}
    order = {model: [random.choice(pks) for _ in range(ops)] for model, pks in keys.items()}

    def getter(model: Any) -> Callable[[int], Any]:
        chosen = order[model]
        return lambda n: model.objects.get(pk=chosen[n])

    results: dict[str, float] = {}
    results["plain get"] = _best(getter(CounterPlain), ops)
    results["memory get"] = _best(getter(CounterMemory), ops)

    # Cold: every read a miss (the map is emptied before each run, the rows are not held).
    count = min(ops, rows) // 2
    distinct = {model: random.sample(keys[model], len(keys[model])) for model in (CounterMemory, CounterMapped)}

    def cold(model: Any) -> Callable[[int], Any]:
        pks = distinct[model]

        def read(n: int) -> Any:
            if n == 0:
                identity.flush()
            return model.objects.get(pk=pks[n])

        return read

    results["memory get, each row once"], results["mapped get, miss"] = _pair(
        cold(CounterMemory), cold(CounterMapped), count
    )

    held = list(CounterMapped.objects.all())  # weak references: the project holds its instances
    results["mapped get, hit"] = _best(getter(CounterMapped), ops)
    request_started.send(sender=None)
    request_finished.send(sender=None)
    results["mapped get, hit, next request"] = _best(getter(CounterMapped), ops)
    chosen = order[CounterMapped]
    results["mapped filter(pk).first(), hit"] = _best(
        lambda n: CounterMapped.objects.filter(pk=chosen[n]).first(), ops // 4
    )
    results["mapped in_bulk(100), per row"] = _best(
        lambda n: CounterMapped.objects.in_bulk(chosen[(n % 100) * 100:(n % 100) * 100 + 100]), ops // 100
    ) / 100

    countries = [Country.objects.create(code="C", name=f"country {n}") for n in range(100)]
    City.objects.bulk_create([City(country=countries[n % 100], name=f"city {n}") for n in range(rows)])
    cities = list(City.objects.all())
    held_countries = list(Country.objects.all())

    def forward(n: int) -> Any:
        city = cities[n % len(cities)]
        city._state.fields_cache.clear()  # as on a freshly loaded row
        return city.country

    results["forward FK city.country, hit"] = _best(forward, ops)
    identity.flush()
    del held_countries
    gc.collect()
    results["forward FK city.country, miss"] = _best(forward, ops // 10, repeats=1)

    # Writes: the map's triggers and hooks, against the same table without them.
    write_ops = max(ops // 8, 10)
    actions: dict[str, list[Callable[[int], Any]]] = {}
    for model in (CounterMemory, CounterMapped):
        instances = list(model.objects.order_by("pk")[:write_ops])
        pks = keys[model]

        def save(n: int, instances: list[Any] = instances) -> None:
            instance = instances[n % len(instances)]
            instance.value += 1
            instance.save()

        def update(n: int, model: Any = model, pks: list[int] = pks) -> None:
            model.objects.filter(pk=pks[n % len(pks)]).update(group=n)

        def create(n: int, model: Any = model) -> None:
            model.objects.create(name=f"new {n}")

        def bulk(n: int, model: Any = model) -> None:
            model.objects.bulk_create([model(name="bulk") for _ in range(1000)])

        for name, action in (("save()", save), ("filter(pk).update()", update), ("create()", create),
                             ("bulk_create(1000), per row", bulk)):
            actions.setdefault(name, []).append(action)
    for name, (memory, mapped) in actions.items():
        bulk_rows = 1000 if name.startswith("bulk") else 1
        pair = _pair(memory, mapped, 3 if bulk_rows > 1 else write_ops)
        results[f"memory {name}"], results[f"mapped {name}"] = (value / bulk_rows for value in pair)
    del held
    return results


def child_rss(params: dict[str, Any]) -> dict[str, float]:
    """Growth of the resident set when 100k rows are held by a list, or by a strong map only."""
    import django

    django.setup()
    from tests.models import CounterMapped, CounterMemory

    rows, mapped = params["rows"], params["mapped"]
    model = CounterMapped if mapped else CounterMemory
    _fill(model, rows)
    if mapped:
        CounterMapped.memdb_identity_strong = True  # type: ignore[attr-defined]
        CounterMapped.memdb_identity_limit = rows  # type: ignore[attr-defined]
    gc.collect()
    before = _rss_kib()
    loaded = list(model.objects.all())
    if mapped:
        del loaded  # the map alone holds them
    gc.collect()
    return {"kib": _rss_kib() - before}


def _idmap_shims() -> None:
    """django-idmap 1.0.3 imports django.utils.six and passes Signal(providing_args=...)."""
    import django.dispatch
    import django.utils

    six = types.ModuleType("django.utils.six")
    six.iteritems = lambda mapping: iter(mapping.items())  # type: ignore[attr-defined]
    six.iterkeys = lambda mapping: iter(mapping.keys())  # type: ignore[attr-defined]
    six.itervalues = lambda mapping: iter(mapping.values())  # type: ignore[attr-defined]

    def with_metaclass(meta: Any, *bases: Any) -> Any:
        # six's own trick: the temporary class is replaced by one made by ``meta``.
        class metaclass(type):
            def __new__(cls, name: str, this_bases: Any, namespace: Any) -> Any:
                return meta(name, bases, namespace)

        return type.__new__(metaclass, "temporary_class", (), {})

    six.with_metaclass = with_metaclass  # type: ignore[attr-defined]
    sys.modules["django.utils.six"] = six
    django.utils.six = six  # type: ignore[attr-defined]
    signal_init = django.dispatch.Signal.__init__

    def init(self: Any, providing_args: Any = None, use_caching: bool = False) -> None:
        signal_init(self, use_caching=use_caching)

    django.dispatch.Signal.__init__ = init  # type: ignore[method-assign]


def child_idmap(params: dict[str, Any]) -> dict[str, float]:
    import django

    _idmap_shims()
    django.setup()
    from django.db import connection, models
    from idmap.models import IdMapModel

    class IdmapCounter(IdMapModel):  # type: ignore[misc]
        name = models.CharField(max_length=50)
        value = models.IntegerField(default=0)

        class Meta:
            app_label = "tests"
            db_table = "bench_idmap_counter"

    with connection.schema_editor() as editor:
        editor.create_model(IdmapCounter)
    rows, ops = params["rows"], params["ops"]
    pks = _fill(IdmapCounter, rows)
    held = list(IdmapCounter.objects.all())
    random.seed(1)
    chosen = [random.choice(pks) for _ in range(ops)]
    result = {"idmap get, hit": _best(lambda n: IdmapCounter.objects.get(pk=chosen[n]), ops)}
    del held
    return result


CHILDREN = {"reads": child_reads, "rss": child_rss, "idmap": child_idmap}


def run_child(name: str, env: dict[str, str], params: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.identity", "--child", name, "--params", json.dumps(params)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
    if done.returncode != 0 or not lines:
        last = [line for line in done.stderr.splitlines() if line.strip()][-1:] or [f"exit {done.returncode}"]
        raise RuntimeError(f"{name}: {last[0]}")
    return json.loads(lines[-1][len(MARK):])  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.identity")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--rss-rows", type=int, default=100_000)
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--params", default="{}")
    options = parser.parse_args(argv)
    if options.child:
        result = CHILDREN[options.child](json.loads(options.params))
        print(MARK + json.dumps(result), flush=True)
        return 0

    params = {"rows": options.rows, "ops": options.ops}
    results: dict[str, dict[str, Any]] = {}
    for mode in ("process", "host"):
        with scratch_database("sqlite") as env, tempfile.TemporaryDirectory() as directory:
            env = dict(env, MEMDB_TEST_MODE=mode, MEMDB_TEST_HOST_DIRECTORY=directory)
            migrate(env)
            progress(f"reads and writes, {mode} mode")
            results[mode] = run_child("reads", env, params)
    memory: dict[str, int] = {}
    for mapped in (False, True):
        with scratch_database("sqlite") as env:
            migrate(env)
            progress(f"memory of {options.rss_rows} rows, {'strong map' if mapped else 'list'}")
            memory["map" if mapped else "list"] = run_child(
                "rss", env, {"rows": options.rss_rows, "mapped": mapped}
            )["kib"]
    idmap: dict[str, Any] | str
    with scratch_database("sqlite") as env:
        migrate(env)
        progress("django-idmap")
        try:
            idmap = run_child("idmap", env, params)
        except RuntimeError as exc:
            idmap = str(exc)

    def us(value: float) -> str:
        return f"{value:.2f}"

    rows = [[name, us(results["process"][name]), us(results["host"][name])] for name in results["process"]]
    if isinstance(idmap, dict):
        rows.append(["django-idmap get, hit (shimmed)", us(idmap["idmap get, hit"]), "-"])
    print(f"Identity map: {options.rows} rows, {options.ops} operations, µs per operation (best of 3)\n")
    print(table(["operation", "process", "host"], rows))
    process = results["process"]
    print()
    print(f"warm get(pk) vs plain model get(pk): {process['plain get'] / process['mapped get, hit']:.0f}x faster")
    print(f"miss vs in-memory get(pk): {process['mapped get, miss'] / process['memory get, each row once'] - 1:+.1%}")
    for write in ("save()", "filter(pk).update()", "create()", "bulk_create(1000), per row"):
        print(f"write {write}: {process['mapped ' + write] / process['memory ' + write] - 1:+.1%}")
    print(
        f"RSS of {options.rss_rows} rows: held in a list {memory['list'] / 1024:.1f} MiB, "
        f"by a strong map only {memory['map'] / 1024:.1f} MiB ({memory['map'] / memory['list']:.2f}x)"
    )
    if not isinstance(idmap, dict):
        print(f"django-idmap: not measured ({idmap})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    sys.exit(main())
