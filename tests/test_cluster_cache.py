"""MemDBCache in cluster mode: processes sharing one cache on the server (PostgreSQL), refused on MariaDB.

Run in the PostgreSQL and MariaDB passes, as tests/test_cluster.py.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.processes import KILLED, Scratch
from tests.servers import Server, Worker
from tests.test_cache import assert_sessions_cross_workers
from tests.test_cluster import ENTRY, SETTINGS, lose_the_tables

pytestmark = [pytest.mark.processes, pytest.mark.cluster]

CACHE_TABLES = ("memdb_cache_cacheentry", "memdb_cache_persistentcacheentry")

postgresql = pytest.mark.database("postgresql")


def _command(alias: str, method: str, *arguments: Any) -> str:
    return "cache " + json.dumps([alias, method, *arguments])


def _ask(worker: Worker, alias: str, method: str, *arguments: Any) -> Any:
    return worker.ask(_command(alias, method, *arguments))


def _workers(scratch: Scratch, *names: str, **env: str) -> list[Worker]:
    return [Worker(scratch, name, SETTINGS, **ENTRY, **env) for name in names]


def _lose_everything(scratch: Scratch) -> None:
    """The server loses its UNLOGGED tables, the cache's included."""
    connection = scratch._connect()
    try:
        connection.cursor().execute("TRUNCATE " + ", ".join(f'"{table}"' for table in CACHE_TABLES))
    finally:
        connection.close()
    lose_the_tables(scratch)


@postgresql
def test_processes_share_entries_add_incr_delete_and_clear(scratch: Scratch) -> None:
    first, second = _workers(scratch, "first", "second")
    _ask(first, "memdb", "set", "shared", {"by": "first"})
    assert _ask(second, "memdb", "get", "shared") == {"by": "first"}
    assert _ask(second, "memdb", "add", "shared", "again") is False
    assert _ask(second, "memdb", "add", "new", (1, 2)) is True  # pickled
    assert _ask(first, "memdb", "get", "new") == [1, 2]  # a tuple, as JSON on the way back to the test
    assert _ask(first, "memdb", "has_key", "new") is True
    _ask(first, "memdb", "set", "counter", 0)
    for worker in (first, second, first):
        _ask(worker, "memdb", "incr", "counter")
    assert _ask(second, "memdb", "decr", "counter", 10) == -7
    assert _ask(first, "memdb", "get", "counter") == -7
    assert _ask(second, "memdb", "delete", "shared") is True
    assert _ask(first, "memdb", "get", "shared") is None
    assert _ask(first, "memdb", "delete", "shared") is False
    _ask(first, "memdb", "set_many", {"m1": 1, "m2": 2})
    assert _ask(second, "memdb", "get_many", ["m1", "m2", "missing"]) == {"m1": 1, "m2": 2}
    _ask(second, "memdb", "delete_many", ["m1"])
    assert _ask(first, "memdb", "get_many", ["m1", "m2"]) == {"m2": 2}
    _ask(second, "memdb", "set", "other cache", 1)
    _ask(first, "memdb_persistent", "set", "not cleared", 1)  # another LOCATION
    _ask(first, "memdb", "clear")
    assert _ask(second, "memdb", "__len__") == 0
    assert _ask(second, "memdb", "get_many", ["counter", "new", "m2"]) == {}
    assert _ask(second, "memdb_persistent", "get", "not cleared") == 1
    for worker in (first, second):
        worker.child.finish().check()


@postgresql
def test_incr_is_atomic_between_processes(scratch: Scratch) -> None:
    first, second = _workers(scratch, "first", "second")
    _ask(first, "memdb", "set", "counter", 0)
    rounds = 200
    for worker in (first, second):  # both queues filled before either answers: they interleave
        assert worker.child.popen.stdin is not None
        worker.child.popen.stdin.write((_command("memdb", "incr", "counter") + "\n") * rounds)
        worker.child.popen.stdin.flush()
    answers = [worker.child.wait_for("ok") for _ in range(rounds) for worker in (first, second)]
    assert sorted(answers) == list(range(1, 2 * rounds + 1))  # every value handed out once
    assert _ask(second, "memdb", "get", "counter") == 2 * rounds


@postgresql
def test_concurrent_writers_past_the_bound_never_deadlock(scratch: Scratch) -> None:
    # Each insert evicts under the cache's lock; a writer holding rows while it waits
    # for that lock, and the holder of the lock wanting those rows, would deadlock.
    first, second = _workers(scratch, "first", "second")
    rounds = 150
    for offset, worker in enumerate((first, second)):
        commands = []
        for number in range(rounds):
            keys = [f"k{(number * 3 + offset + step) % 12}" for step in range(4)]
            if number % 2:
                keys.reverse()
            commands.append(_command("memdb_small", "set_many", {key: number for key in keys}))
            commands.append(_command("memdb_small", "set", keys[1], "single"))
        assert worker.child.popen.stdin is not None
        worker.child.popen.stdin.write("".join(command + "\n" for command in commands))
        worker.child.popen.stdin.flush()
    for worker in (first, second):
        outcomes = [worker.child.wait_for_any("ok", "error") for _ in range(2 * rounds)]
        assert [value for outcome, value in outcomes if outcome == "error"] == []
    assert _ask(first, "memdb_small", "__len__") <= 9


@postgresql
def test_touch_and_expiry_are_seen_by_every_process(scratch: Scratch) -> None:
    first, second = _workers(scratch, "first", "second")
    _ask(first, "memdb", "set", "short", 1, 1)
    _ask(first, "memdb", "set", "touched", 1, 1)
    _ask(first, "memdb", "set", "gone", 1, 0)  # zero: expired at once
    assert _ask(second, "memdb", "touch", "touched", 100) is True
    assert _ask(second, "memdb", "touch", "missing") is False
    assert _ask(second, "memdb", "get", "gone") is None
    assert _ask(second, "memdb", "add", "gone", 2) is True  # add replaces an expired entry
    time.sleep(1.2)
    assert _ask(second, "memdb", "get", "short") is None
    assert _ask(first, "memdb", "has_key", "short") is False
    assert _ask(first, "memdb", "touch", "short", 100) is False
    assert _ask(first, "memdb", "get_many", ["short", "touched", "gone"]) == {"touched": 1, "gone": 2}
    assert first.call(_command("memdb", "incr", "short"))[0] == "error"  # ValueError: not found


@postgresql
def test_get_many_deletes_the_expired_entries_it_finds(scratch: Scratch) -> None:
    (first,) = _workers(scratch, "first")
    _ask(first, "memdb", "set", "expiring", 1, 1)
    _ask(first, "memdb", "set", "kept", 1)
    time.sleep(1.2)
    assert _ask(first, "memdb", "__len__") == 2  # counted until something evicts or reads it
    assert _ask(first, "memdb", "get_many", ["expiring", "kept"]) == {"kept": 1}
    assert _ask(first, "memdb", "__len__") == 1


@postgresql
def test_one_bound_for_every_process_least_recently_used_go(scratch: Scratch) -> None:
    first, second = _workers(scratch, "first", "second")
    for number in range(9):
        _ask((first, second)[number % 2], "memdb_small", "set", f"k{number}", number)
    assert _ask(first, "memdb_small", "__len__") == 9
    _ask(second, "memdb_small", "set", "k1", "rewritten")  # a write is a use
    assert _ask(first, "memdb_small", "touch", "k0", 100) is True  # a touch too, as in host mode
    _ask(first, "memdb_small", "set", "k9", 9)  # past the bound: the 3 least recently used go
    assert _ask(second, "memdb_small", "__len__") == 7
    found = _ask(second, "memdb_small", "get_many", [f"k{n}" for n in range(10)])
    assert sorted(found) == ["k0", "k1", "k5", "k6", "k7", "k8", "k9"]
    # Many inserts from both: the bound holds for the cluster.
    _ask(first, "memdb", "set_many", {f"a{n}": n for n in range(700)})
    _ask(second, "memdb", "set_many", {f"b{n}": n for n in range(700)})
    assert _ask(first, "memdb", "__len__") <= 1000
    assert _ask(first, "memdb", "get", "b699") == 699


@postgresql
def test_a_persistent_cache_survives_a_killed_process_and_the_server_losing_the_tables(scratch: Scratch) -> None:
    (first,) = _workers(scratch, "first")
    _ask(first, "memdb_persistent", "set", "kept", {"value": [1, 2]})
    _ask(first, "memdb_persistent", "set", "pickled", (1, "two"))
    _ask(first, "memdb_persistent", "set", "expiring", 1, 1)
    _ask(first, "memdb_persistent", "set", "deleted", 1)
    _ask(first, "memdb_persistent", "delete", "deleted")
    _ask(first, "memdb_persistent", "set", "counter", 1)
    _ask(first, "memdb_persistent", "incr", "counter", 4)
    _ask(first, "memdb", "set", "not persistent", 1)
    assert first.child.send(signal.SIGKILL).returncode == KILLED

    _lose_everything(scratch)
    (second,) = _workers(scratch, "second")
    assert _ask(second, "memdb_persistent", "get_many", ["kept", "pickled", "deleted", "counter"]) == {
        "kept": {"value": [1, 2]}, "pickled": [1, "two"], "counter": 5,
    }
    assert _ask(second, "memdb", "get", "not persistent") is None
    time.sleep(1.1)
    assert _ask(second, "memdb_persistent", "get", "expiring") is None  # the expiry was restored too
    _ask(second, "memdb_persistent", "clear")
    assert second.child.send(signal.SIGKILL).returncode == KILLED

    _lose_everything(scratch)
    (third,) = _workers(scratch, "third")
    assert _ask(third, "memdb_persistent", "__len__") == 0  # the clear was stored as well
    third.child.finish().check()


@postgresql
@pytest.mark.parametrize("engine", ["cache", "cached_db"])
def test_sessions_written_by_one_worker_are_read_by_another(scratch: Scratch, tmp_path: Path, engine: str) -> None:
    server = Server(scratch, tmp_path, SETTINGS, MEMDB_TEST_SESSION_ENGINE=f"django.contrib.sessions.backends.{engine}")
    try:
        assert_sessions_cross_workers(server.port)
    finally:
        server.stop()


@pytest.mark.database("mariadb")
def test_on_mariadb_the_cache_is_refused_with_the_way_out(scratch: Scratch) -> None:
    worker = Worker(scratch, "worker", SETTINGS, **ENTRY)
    for alias in ("memdb", "memdb_persistent"):
        outcome, message = worker.call(_command(alias, "set", "k", 1))
        assert outcome == "error"
        assert "ImproperlyConfigured" in message and "needs PostgreSQL" in message, message
        assert "MEMDB_MODE 'host'" in message, message
    assert worker.ask("write still works") == 1  # the rest of the process is unharmed
    worker.child.finish().check()
