"""A long-lived process of the test project that obeys commands on stdin.

``write <text>`` creates a Persistent (or $MEMDB_TEST_WORKER_MODEL) row, ``create <json>`` one with
these fields, ``writes <n> <prefix>`` n rows one by one, ``bulk <n> <prefix>`` n rows in one
INSERT, ``count`` counts them, ``raw-count`` too but in SQL (no router, so no purge of expired
rows), ``texts`` lists them, ``spool`` runs ``memdb_spool``, ``cache ["alias", "method", args...]``
calls a method of a cache; each answers one ``@ok <json>`` or ``@error <message>`` line.
``name-new <name>``, ``name-get <pk>`` and ``name-set <pk> <name>`` act on a model with the identity
map ($MEMDB_TEST_IDENTITY_MODEL), each as one request: ``name-get`` answers the name, the id() of the
instance and whether a second read in the request gave the same one.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    django.setup()
    from django.apps import apps
    from django.core.cache import caches
    from django.core.management import call_command
    from django.db import connections

    # The cluster tests use a model that fits MEMORY tables.
    Persistent = apps.get_model(os.environ.get("MEMDB_TEST_WORKER_MODEL", "tests.Persistent"))

    _die_at(os.environ.get("MEMDB_TEST_WORKER_DIE_AT"))
    print(f"@ready {json.dumps(os.getpid())}", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        try:
            if command == "write":
                value: object = Persistent.objects.create(text=argument).pk
            elif command == "writes":  # writes <n> <prefix>: n creates, one statement each
                number, _, prefix = argument.partition(" ")
                value = [Persistent.objects.create(text=f"{prefix} {i}").pk for i in range(int(number))]
            elif command == "bulk":  # bulk <n> <prefix>: n rows in one INSERT
                number, _, prefix = argument.partition(" ")
                Persistent.objects.bulk_create([Persistent(text=f"{prefix} {i}") for i in range(int(number))])
                value = None
            elif command == "create":
                value = Persistent.objects.create(**json.loads(argument)).pk
            elif command == "raw-count":
                with connections["django_memdb"].cursor() as cursor:
                    cursor.execute(f'SELECT count(*) FROM "{Persistent._meta.db_table}"')
                    value = cursor.fetchone()[0]
            elif command == "spool":
                call_command("memdb_spool", verbosity=0)
                value = None
            elif command.startswith("name-"):
                mapped = apps.get_model(os.environ.get("MEMDB_TEST_IDENTITY_MODEL", "tests.Country"))
                value = _as_request(mapped, command, argument)
            elif command == "cache":
                alias, method, *arguments = json.loads(argument)
                value = getattr(caches[alias], method)(*arguments)
            elif command == "count":
                value = Persistent.objects.count()
            else:
                value = list(Persistent.objects.order_by("id").values_list("text", flat=True))
        except Exception as exc:  # reported to the test, which decides
            print(f"@error {json.dumps(f'{type(exc).__name__}: {exc}')}", flush=True)
        else:
            print(f"@ok {json.dumps(value)}", flush=True)


_held: list[Any] = []


def _as_request(model: Any, command: str, argument: str) -> Any:
    """One command as one request: Django's handler sends these signals around a view."""
    from django.core.signals import request_finished, request_started

    request_started.send(sender=None)
    try:
        if command == "name-new":
            return model.objects.create(name=argument).pk
        pk, _, name = argument.partition(" ")
        if command == "name-set":
            return model.objects.filter(pk=int(pk)).update(name=name)
        instance = model.objects.get(pk=int(pk))
        _held.append(instance)  # as a long-lived reference of the project would
        return [instance.name, id(instance), model.objects.get(pk=int(pk)) is instance]
    finally:
        request_finished.send(sender=None)


def _die_at(point: str | None) -> None:
    """Cluster mode: SIGKILL this process right after the named step."""
    if not point:
        return
    import signal

    from django_memdb import storage
    from django_memdb.cluster import lifecycle

    def dying(function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            result = function(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
            return result

        return call

    if point == "restored":  # tables loaded; no triggers, no marker yet
        lifecycle.restore_all = dying(lifecycle.restore_all)  # type: ignore[assignment]
    elif point == "journaled":  # entry committed; its change records not yet deleted
        storage.append_journal = dying(storage.append_journal)  # type: ignore[assignment]
    else:
        raise ValueError(point)


if __name__ == "__main__":
    main()
