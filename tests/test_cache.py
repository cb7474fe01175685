"""MemDBCache: Django's cache semantics, LRU eviction, expiry, sharing between processes, persistence."""

from __future__ import annotations

import http.cookiejar
import json
import pickle
import random
import signal
import sqlite3
import threading
import time
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from django.core.cache.backends.base import CacheKeyWarning, InvalidCacheKey
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.utils.safestring import SafeString, mark_safe

from django_memdb.cache import MemDBCache, codec
from django_memdb.cache.models import CacheEntry, PersistentCacheEntry
from django_memdb.cache.read_copy import ReadCopy
from django_memdb.cache.sqlite_store import COUNTED, HELD, STATE
from django_memdb.cache.wal_header import WalHeader
from django_memdb.exceptions import RestoreError
from django_memdb.inspection.status import status
from django_memdb.models import PersistentStorage
from django_memdb.tools.restore import restore
from tests.processes import KILLED, Scratch
from tests.servers import Server, Worker

memdb = pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)


def _cache(location: str, **options: Any) -> MemDBCache:
    cache = MemDBCache(location, {"OPTIONS": options})
    cache.clear()
    return cache


# Values


def test_json_values_are_not_pickled_and_others_are() -> None:
    for value in [{"a": [1, 2.5, None, True, "é"]}, [], "text", 7, 10**30]:
        data, kind = codec.encode(value)
        assert kind == codec.JSON and json.loads(data) == value
        assert codec.decode(data, kind) == value
    # Values JSON would give back as something else are pickled, and come back as they were.
    for value in [(1, 2), {1: "int key"}, {"a": (1,)}, mark_safe("<b>"), b"bytes", {"s": {1, 2}}]:
        data, kind = codec.encode(value)
        assert kind == codec.PICKLE
        back = codec.decode(data, kind)
        assert back == value and type(back) is type(value)
    assert type(codec.decode(*codec.encode(mark_safe("x")))) is SafeString


# Django's semantics in process mode


@memdb
def test_every_method_of_base_cache() -> None:
    cache = _cache("semantics", MAX_ENTRIES=100)
    cache.set("a", {"x": 1})
    assert cache.get("a") == {"x": 1} and cache.get("missing", "default") == "default"
    assert cache.add("a", 2) is False and cache.add("b", 2) is True
    assert cache.incr("b", 5) == 7 and cache.decr("b") == 6 and cache.get("b") == 6
    with pytest.raises(ValueError):
        cache.incr("missing")
    assert cache.touch("b", 100) is True and cache.touch("missing") is False
    assert cache.has_key("b") and "b" in cache and not cache.has_key("missing")
    assert cache.set_many({"m1": 1, "m2": (2,)}) == []
    assert cache.get_many(["m1", "m2", "missing"]) == {"m1": 1, "m2": (2,)}
    cache.delete_many(["m1", "m2"])
    assert cache.get_many(["m1", "m2"]) == {}
    assert cache.get_or_set("g", lambda: "made") == "made" and cache.get_or_set("g", "other") == "made"
    assert cache.delete("g") is True and cache.delete("g") is False
    cache.set("v", "one", version=2)
    assert cache.get("v") is None and cache.get("v", version=2) == "one"
    assert cache.incr_version("v", version=2) == 3 and cache.get("v", version=3) == "one"
    other = MemDBCache("semantics", {"KEY_PREFIX": "other", "OPTIONS": {"MAX_ENTRIES": 100}})
    assert other.get("a") is None  # KEY_PREFIX separates keys in one cache
    cache.clear()
    assert cache.get("a") is None and len(cache) == 0
    cache.close()


@memdb
def test_caches_with_another_location_do_not_share_entries() -> None:
    first, second = _cache("first"), _cache("second")
    first.set("k", 1)
    assert second.get("k") is None
    second.clear()
    assert first.get("k") == 1
    assert MemDBCache("first", {}).get("k") == 1  # the same LOCATION: the same entries


@memdb
def test_expiry_per_key() -> None:
    cache = _cache("expiry")
    cache.set("gone", 1, timeout=0)  # as Django: zero means expired at once
    cache.set("past", 1, timeout=-5)
    cache.set("short", 1, timeout=1)
    cache.set("never", 1, timeout=None)
    assert cache.get("gone") is None and cache.get("past") is None
    assert cache.add("past", 2) is True and cache.get("past") == 2  # add replaces an expired entry
    assert cache.get("short") == 1
    time.sleep(1.2)
    assert cache.get("short") is None and not cache.has_key("short") and cache.get_many(["short"]) == {}
    with pytest.raises(ValueError):
        cache.incr("short")
    assert cache.touch("short") is False
    assert cache.get("never") == 1
    cache.set("incremented", 1, timeout=1)
    cache.incr("incremented")  # incr keeps the expiry
    time.sleep(1.2)
    assert cache.get("incremented") is None


@memdb
def test_lru_eviction_order() -> None:
    cache = _cache("lru", MAX_ENTRIES=9, CULL_FREQUENCY=3)
    for number in range(9):
        cache.set(f"k{number}", number)
    assert len(cache) == 9
    cache.get("k0")  # read while older than half the live entries: becomes the most recent
    cache.set("k1", "rewritten")  # a write is a use too
    cache.set("k9", 9)  # past the bound: the 3 least recently used go
    assert len(cache) == 7
    assert sorted(cache.get_many([f"k{n}" for n in range(10)])) == ["k0", "k1", "k5", "k6", "k7", "k8", "k9"]


@memdb
@pytest.mark.parametrize("persistent", [False, True], ids=["sets held back", "persistent, each set a statement"])
def test_expired_entries_are_evicted_before_live_ones(persistent: bool) -> None:
    # In process mode the eviction trigger reads the time from the state row, which each batch
    # of held sets, and each single set at most a second apart, moves first.
    cache = _cache("expired-first", MAX_ENTRIES=4, CULL_FREQUENCY=4, PERSISTENT=persistent)
    cache.set("old", 1)
    cache.set("a", 1)
    cache.set("b", 1)
    cache.set("expired", 1, timeout=-1)  # the most recent, but expired
    cache.set("new", 1)
    assert sorted(cache.get_many(["old", "a", "b", "expired", "new"])) == ["a", "b", "new", "old"]


@memdb
def test_cull_frequency_zero_empties_the_cache() -> None:
    cache = _cache("cull-all", MAX_ENTRIES=3, CULL_FREQUENCY=0)
    for key in "abcd":
        cache.set(key, 1)
    assert cache.get_many(list("abcd")) == {"d": 1}


@memdb
def test_the_bound_holds_with_a_cache_reset_in_another_instance() -> None:
    cache = _cache("bound", MAX_ENTRIES=50)
    for number in range(500):
        cache.set(f"k{number}", number)
        assert len(cache) <= 50
    assert MemDBCache("bound", {"OPTIONS": {"MAX_ENTRIES": 50}}).get("k499") == 499


@memdb
def test_a_write_inside_a_transaction_of_the_alias_rolls_back_with_it() -> None:
    cache = _cache("atomic")
    with pytest.raises(ZeroDivisionError), transaction.atomic(using="django_memdb"):
        cache.set("k", 1)
        cache.incr("k")
        assert cache.get("k") == 2
        1 / 0  # noqa: B018
    assert cache.get("k") is None


@memdb
def test_a_rolled_back_write_leaves_no_stale_read_copy() -> None:
    cache = _cache("copy-atomic")
    cache.set("k", 1)
    assert cache.get("k") == 1  # now in the process's read copy
    with pytest.raises(ZeroDivisionError), transaction.atomic(using="django_memdb"):
        cache.set("k", 2)
        cache.delete("gone")
        assert cache.get("k") == 2
        1 / 0  # noqa: B018
    assert cache.get("k") == 1


@memdb
def test_writes_to_the_table_outside_the_cache_are_seen_by_its_reads() -> None:
    cache = _cache("copy-orm")
    cache.set("k", 1)
    cache.set("other", 1)
    assert cache.get("k") == 1 and cache.get("other") == 1
    CacheEntry.objects.filter(key__endswith=":k").update(value=codec.encode(2)[0])
    assert cache.get("k") == 2
    CacheEntry.objects.filter(cache="copy-orm", key__endswith=":other").delete()
    assert cache.get("other") is None


@memdb
@pytest.mark.parametrize("persistent", [False, True])
def test_reads_agree_with_the_table_after_evictions(persistent: bool) -> None:
    cache = _cache("copy-evict", MAX_ENTRIES=20, CULL_FREQUENCY=3, PERSISTENT=persistent)
    for number in range(200):
        cache.set(f"k{number}", number)
        if number % 3 == 0:
            cache.get(f"k{number // 2}")
        present = [n for n in range(number + 1) if cache.has_key(f"k{n}")]
        assert [n for n in range(number + 1) if cache.get(f"k{n}") is not None] == present
        assert len(present) == len(cache) <= 20


@memdb
def test_sets_held_back_are_written_before_anything_else_reads_the_database() -> None:
    """Process mode holds sets back (write-behind): no reader of the database can tell."""
    cache = _cache("held", MAX_ENTRIES=10_000)
    store = cache._entries()
    cache.set("a", 1)
    assert store.held  # not written yet
    assert CacheEntry.objects.filter(cache="held").count() == 1  # written before the ORM's statement
    assert not store.held
    cache.set("b", 2)
    counted: list[int] = []

    def count_in_another_thread() -> None:
        counted.append(CacheEntry.objects.filter(cache="held").count())
        connections.close_all()

    thread = threading.Thread(target=count_in_another_thread)
    thread.start()
    thread.join()
    assert counted == [2]
    cache.set("c", 3)
    with pytest.raises(ZeroDivisionError), transaction.atomic(using="django_memdb"):
        CacheEntry.objects.filter(cache="held").delete()
        1 / 0  # noqa: B018
    assert (cache.get("a"), cache.get("c")) == (1, 3)  # written before the transaction began: not rolled back
    cache.set("c", 4)
    assert cache.get("c") == 4 and cache.has_key("c")  # the held value, not the table's
    cache.set("short", 1, timeout=0.2)
    time.sleep(0.3)
    assert cache.get("short") is None and not cache.has_key("short")
    cache.delete("short")  # removed already if it was written before the read, which drops expired entries
    cache.set("d", 1)
    assert cache.delete("d") is True and cache.get("d") is None
    cache.set("e", 1)
    assert cache.add("e", 2) is False and cache.incr("e") == 2 and cache.get_many(["e", "c"]) == {"e": 2, "c": 4}
    for number in range(HELD * 2 + 5):
        cache.set(f"n{number}", number)
    assert len(store.held) <= HELD  # written in batches as they come
    (rows,) = [table.memory_rows for table in status().tables if table.table == CacheEntry._meta.db_table]
    assert rows == len(cache) == HELD * 2 + 5 + 4  # a, b, c, e
    cache.set("f", 1)
    cache.clear()
    assert cache.get("f") is None and len(cache) == 0
    persistent = _cache("held-persistent", PERSISTENT=True)
    persistent.set("a", 1)
    assert not persistent._entries().held  # journaled as the project's durability says


@memdb
def test_held_sets_that_cannot_be_written_do_not_fail_another_statement(caplog: Any) -> None:
    cache = _cache("held-broken")
    cache.set("good", 1)
    store = cache._entries()
    store.held["bad"] = (b"1", -1, None)  # refused by the table's CHECK (kind >= 0)
    assert CacheEntry.objects.filter(cache="held-broken").count() == 0  # the statement ran
    assert "2 entries held back could not be written" in caplog.text
    assert cache.get("good") is None and cache.get("bad") is None  # lost, as a cache may
    cache.set("good", 2)
    assert cache.get("good") == 2 and len(cache) == 1


@memdb
def test_held_sets_keep_the_bound_and_the_reads_right() -> None:
    cache = _cache("held-bound", MAX_ENTRIES=50, CULL_FREQUENCY=5)
    for number in range(1000):
        cache.set(f"k{number}", number)
        if number % 7 == 0:
            assert cache.get(f"k{number}") == number  # held or written, the newest value
    assert len(cache) <= 50
    present = [n for n in range(1000) if cache.get(f"k{n}") is not None]
    assert present and present[-1] == 999 and len(present) == len(cache)


@memdb
def test_held_sets_with_room_are_counted_once_and_the_count_stays_true() -> None:
    """Held sets that cannot overflow skip the per-row triggers: the store counts them, and every
    other way to add or remove rows (the triggers, the ORM, eviction) keeps the same count."""
    cache = _cache("counted", MAX_ENTRIES=400, CULL_FREQUENCY=4)
    store = cache._entries()
    conn = connections["django_memdb"]

    def check() -> list[int]:
        store.write_held()
        rows = CacheEntry.objects.filter(cache="counted")
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT entries FROM {STATE} WHERE cache = %s", ["counted"])
            (entries,) = cursor.fetchone()
        assert entries == rows.count() == len(cache)
        return sorted({kind for kind in rows.values_list("kind", flat=True)})

    for number in range(HELD):
        cache.set(f"k{number}", {"n": number} if number % 2 else (number,))  # JSON and pickled
    assert check() == [codec.JSON | COUNTED, codec.PICKLE | COUNTED]  # counted by the store
    for number in range(0, HELD, 4):
        cache.set(f"k{number}", number)  # replaced, not counted again
    cache.add("added", 1)  # the triggers count it
    assert check() == [codec.JSON, codec.JSON | COUNTED, codec.PICKLE | COUNTED]
    cache.delete("k1")
    CacheEntry.objects.filter(key__endswith=":k3").delete()
    check()
    store.copy.entries.clear()  # read from the table: the COUNTED bit is not the value's kind
    assert cache.get("k4") == 4 and cache.get("k5") == {"n": 5} and cache.get("k6") == (6,)
    assert cache.get_many(["k7", "k8"]) == {"k7": {"n": 7}, "k8": 8} and cache.incr("k8") == 9
    for number in range(1000):  # held sets that may overflow go through the triggers, which evict
        cache.set(f"more{number}", number)
        if number % 97 == 0:
            assert check() and len(cache) <= 400
    assert cache.get("more999") == 999


@memdb
def test_read_entries_outlive_entries_only_written() -> None:
    """The Zipf stream of benchmarks/cache.py, smaller: at least LocMemCache's hit rate."""
    rng = random.Random(3)
    stream = rng.choices(range(5000), weights=[1 / rank for rank in range(1, 5001)], k=20000)
    rates = []
    for cache in (_cache("zipf", MAX_ENTRIES=200), LocMemCache("zipf", {"OPTIONS": {"MAX_ENTRIES": 200}})):
        hits = 0
        for number in stream:
            if cache.get(number) is None:
                cache.set(number, number)
            else:
                hits += 1
        rates.append(hits / len(stream))
    assert rates[0] >= rates[1], rates


@memdb
def test_keys_are_validated_at_every_use_until_found_valid() -> None:
    cache = _cache("keys")
    for _ in range(3):  # a key memcached would refuse warns each time, not only the first
        with pytest.warns(CacheKeyWarning, match="memcached"):
            cache.set("has space", 1)
        with pytest.warns(CacheKeyWarning, match="longer than"):
            cache.get("k" * 300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.set("fine", 1)
        assert cache.get("fine") == 1 and cache.get("fine", version=2) is None

    class Strict(MemDBCache):
        def validate_key(self, key: str) -> None:
            if key.endswith("refused"):
                raise InvalidCacheKey(key)

    strict = Strict("keys", {})
    for _ in range(3):  # a validation of its own is asked every time
        with pytest.raises(InvalidCacheKey):
            strict.get("refused")


def test_the_wal_index_header_moves_with_every_commit_of_another_connection(tmp_path: Path) -> None:
    """What a host-mode read copy relies on instead of asking data_version at each read."""
    path = str(tmp_path / "shared.sqlite3")
    mine, other = (sqlite3.connect(path, isolation_level=None) for _ in range(2))
    mine.execute("PRAGMA journal_mode = WAL")
    mine.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    header = WalHeader.open(mine)
    assert header is not None
    copy = ReadCopy(mine, 100, shared_by_processes=True)
    copy.header = header
    for number in range(3):
        other.execute("INSERT OR REPLACE INTO t VALUES ('k', ?)", (number,))
        assert copy.may_keep()
        copy.keep("k", mine.execute("SELECT v, 0, NULL, 0 FROM t WHERE k = 'k'").fetchone())
        assert copy.get("k") == (number, 0, None, 0)
        other.execute("UPDATE t SET v = v + 100")  # another process's commit: the next read forgets the copy
        assert copy.get("k") is None
    before = mine.total_changes
    mine.execute("INSERT INTO t VALUES ('mine', 1)")  # the store's own write, which it reports
    copy.wrote(before, {"mine": (1, 0, None, 0)})
    assert copy.get("mine") == (1, 0, None, 0)  # kept, though the write moved the header
    mine.execute("UPDATE t SET v = 2 WHERE k = 'mine'")  # any other write of this process
    assert copy.get("mine") is None
    header.close()
    assert header.read() == b""  # closed: never equal, data_version is asked
    assert WalHeader.open(sqlite3.connect(":memory:")) is None
    mine.close()
    other.close()


def test_own_writes_keep_the_read_copy_without_asking_data_version(tmp_path: Path) -> None:
    """The header's commit counter tells a store's own commit from another connection's."""
    path = str(tmp_path / "shared.sqlite3")
    mine, other = (sqlite3.connect(path, isolation_level=None) for _ in range(2))
    mine.execute("PRAGMA journal_mode = WAL")
    for connection in (mine, other):
        connection.execute("PRAGMA wal_autocheckpoint = 2")  # the WAL restarts often
    mine.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    copy = ReadCopy(mine, 1000, shared_by_processes=True)
    copy.header = WalHeader.open(mine)
    asked: list[str] = []
    mine.set_trace_callback(lambda statement: asked.append(statement) if "data_version" in statement else None)
    assert copy.may_keep()
    for number in range(50):
        before = mine.total_changes
        mine.execute("INSERT INTO t (k, v) VALUES (?, ?)", (number, "x" * 3000))
        copy.wrote(before, {str(number): (number, 0, None, 0)})
    assert len(asked) == 1  # once, when the copy took its first version
    assert all(copy.get(str(number)) == (number, 0, None, 0) for number in range(50))
    before = mine.total_changes
    mine.execute("DELETE FROM t WHERE k = -1")  # changed nothing, committed nothing
    other.execute("INSERT INTO t (k, v) VALUES (100, 'theirs')")  # one commit: not this write's
    copy.wrote(before, {"-1": None})
    assert copy.get("0") is None  # forgotten
    assert copy.may_keep()
    copy.keep("0", (0, 0, None, 0))
    before = mine.total_changes
    other.execute("UPDATE t SET v = 'theirs' WHERE k = 0")
    mine.execute("INSERT INTO t (k, v) VALUES (200, 'mine')")  # two commits since the copy's version
    copy.wrote(before, {"200": (200, 0, None, 0)})
    assert copy.get("0") is None
    mine.close()
    other.close()


def test_bad_settings_name_the_cache_and_the_way_out() -> None:
    with pytest.raises(ImproperlyConfigured, match="MAX_ENTRIES"):
        MemDBCache("bad", {"OPTIONS": {"MAX_ENTRIES": 0}})
    with pytest.raises(ImproperlyConfigured, match="LOCATION"):
        MemDBCache("bad\x1fname", {})


@memdb
def test_entries_live_in_the_in_memory_database() -> None:
    caches["memdb"].set("where", "here")
    with connections["django_memdb"].cursor() as cursor:
        cursor.execute("SELECT cache, kind FROM memdb_cache_cacheentry WHERE key = %s", ["tests\x1f:1:where"])
        assert cursor.fetchall() == [("tests", codec.JSON | COUNTED)]  # a held set, counted by the store
    caches["memdb"].delete("where")


# Several processes


def _ask(worker: Worker, alias: str, method: str, *arguments: Any) -> Any:
    return worker.ask("cache " + json.dumps([alias, method, *arguments]))


@pytest.mark.processes
def test_host_mode_processes_share_one_cache(scratch: Scratch, tmp_path: Path) -> None:
    host = {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path)}
    first, second = Worker(scratch, "first", **host), Worker(scratch, "second", **host)
    _ask(first, "memdb", "set", "shared", {"by": "first"})
    assert _ask(second, "memdb", "get", "shared") == {"by": "first"}
    assert _ask(second, "memdb", "add", "shared", "again") is False
    _ask(first, "memdb", "set", "counter", 0)
    for worker in (first, second, first):
        _ask(worker, "memdb", "incr", "counter")
    assert _ask(second, "memdb", "get", "counter") == 3
    assert _ask(second, "memdb", "delete", "shared") is True
    assert _ask(first, "memdb", "get", "shared") is None
    # The bound is one for the host: the cache never holds more than MAX_ENTRIES (1000).
    _ask(first, "memdb", "set_many", {f"a{n}": n for n in range(700)})
    _ask(second, "memdb", "set_many", {f"b{n}": n for n in range(700)})
    assert _ask(first, "memdb", "__len__") <= 1000
    assert _ask(first, "memdb", "get", "b699") == 699


@pytest.mark.processes
def test_host_mode_reads_see_every_change_of_another_process(scratch: Scratch, tmp_path: Path) -> None:
    host = {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path)}
    first, second = Worker(scratch, "first", **host), Worker(scratch, "second", **host)
    for number in range(5):
        _ask(first, "memdb", "set", "k", number)
        assert _ask(first, "memdb", "get", "k") == number  # read by the first from its copy
        assert _ask(second, "memdb", "get", "k") == number
        _ask(second, "memdb", "set", "k", number + 100)
        assert _ask(first, "memdb", "get", "k") == number + 100
        assert _ask(second, "memdb", "get", "k") == number + 100
    assert _ask(second, "memdb", "delete", "k") is True
    assert _ask(first, "memdb", "get", "k") is None
    _ask(first, "memdb", "set", "short", 1, 1)
    assert _ask(second, "memdb", "get", "short") == 1
    _ask(second, "memdb", "touch", "short", 60)
    time.sleep(1.2)
    assert _ask(first, "memdb", "get", "short") == 1  # the expiry the other process set
    _ask(second, "memdb", "clear")
    assert _ask(first, "memdb", "get", "short") is None


@pytest.mark.processes
@pytest.mark.parametrize("durability", ["commit", "interval"])
def test_an_idle_host_mode_process_commits_nothing_to_the_shared_file(
    scratch: Scratch, tmp_path: Path, durability: str
) -> None:
    """Each commit to the host's file makes every process drop its read copies and identity maps:
    the periodic flush must not commit when it has nothing to store."""
    host = {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path), "MEMDB_TEST_FLUSH_INTERVAL": "0.1"}
    host["MEMDB_TEST_DURABILITY"] = durability
    worker = Worker(scratch, "first", **host)
    _ask(worker, "memdb", "set", "k", 1)
    (path,) = [found for found in tmp_path.rglob("*.sqlite3") if found.name.startswith("django_memdb-")]
    watcher = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    version = watcher.execute("PRAGMA data_version").fetchone()[0]
    time.sleep(1.0)  # ten flushes of the worker
    assert watcher.execute("PRAGMA data_version").fetchone()[0] == version
    _ask(worker, "memdb", "set", "k", 2)
    assert watcher.execute("PRAGMA data_version").fetchone()[0] != version  # it does see commits
    watcher.close()


@pytest.mark.processes
def test_process_mode_caches_are_private(scratch: Scratch) -> None:
    first, second = Worker(scratch, "first"), Worker(scratch, "second")
    _ask(first, "memdb", "set", "mine", 1)
    assert _ask(second, "memdb", "get", "mine") is None


@pytest.mark.processes
@pytest.mark.parametrize("durability", ["commit", "interval"])
def test_a_persistent_cache_survives_a_killed_process(scratch: Scratch, durability: str) -> None:
    policy = {"MEMDB_TEST_DURABILITY": durability, "MEMDB_TEST_FLUSH_INTERVAL": "0.2"}
    first = Worker(scratch, "first", **policy)
    _ask(first, "memdb_persistent", "set", "kept", {"value": [1, 2]})
    _ask(first, "memdb_persistent", "set", "pickled", None)
    _ask(first, "memdb_persistent", "set", "expiring", 1, 1)
    _ask(first, "memdb_persistent", "set", "deleted", 1)
    _ask(first, "memdb_persistent", "delete", "deleted")
    _ask(first, "memdb", "set", "not persistent", 1)
    if durability == "interval":
        first.ask("spool", "ok")  # what the interval thread does within a second
    for _ in range(50):  # reads are not journaled: nothing pending after them
        _ask(first, "memdb_persistent", "get", "kept")
    assert first.child.send(signal.SIGKILL).returncode == KILLED
    stored_before = [(s.modelname, s.rows) for s in scratch.stored()]

    second = Worker(scratch, "second")
    assert _ask(second, "memdb_persistent", "get", "kept") == {"value": [1, 2]}
    assert _ask(second, "memdb_persistent", "get_many", ["kept", "deleted", "pickled"]) == {
        "kept": {"value": [1, 2]}, "pickled": None,
    }
    assert _ask(second, "memdb", "get", "not persistent") is None
    time.sleep(1.1)
    assert _ask(second, "memdb_persistent", "get", "expiring") is None  # expiry survives the restart
    assert stored_before, "the persistent cache was journaled"


@memdb
def test_a_persistent_cache_whose_entries_cannot_be_restored_refuses_reads_too() -> None:
    # Reads skip the router's checks while the database is restored without failures:
    # a failed restore must still refuse them, also to a backend that has read before.
    cache = _cache("blocked", PERSISTENT=True)
    cache.set("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    label = PersistentCacheEntry._meta.label
    stored = PersistentStorage.objects.filter(modelname=PersistentCacheEntry.__name__)
    assert stored.exists()
    good = {row.pk: bytes(row.data) for row in stored}
    stored.update(data=b"\x00 not json")
    with pytest.raises(RestoreError) as caught:
        restore(list(PersistentStorage.objects.all()))
    assert label in str(caught.value)
    with pytest.raises(RestoreError):
        cache.get("k")
    with pytest.raises(RestoreError):
        cache.set("k", 2)
    for pk, data in good.items():
        PersistentStorage.objects.filter(pk=pk).update(data=data)
    restore()
    assert cache.get("k") == {"v": 1}


@pytest.mark.processes
def test_reads_of_a_persistent_cache_journal_nothing(scratch: Scratch) -> None:
    first = Worker(scratch, "first")
    _ask(first, "memdb_persistent", "set", "k", 1)
    journaled = len(scratch.stored())
    for _ in range(200):
        assert _ask(first, "memdb_persistent", "get", "k") == 1
    assert len(scratch.stored()) == journaled


# Sessions over HTTP, several gunicorn workers sharing the host's cache


class _Browser:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/session/"
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def call(self, text: str | None = None) -> dict[str, Any]:
        data = None if text is None else urllib.parse.urlencode({"text": text}).encode()
        request = urllib.request.Request(self.base, data=data, headers={"Connection": "close"})
        with self.opener.open(request, timeout=30) as response:
            return dict(json.loads(response.read()))


def assert_sessions_cross_workers(port: int) -> None:
    """Sessions written through one worker are read through others (each browser keeps its cookie)."""
    browsers = [_Browser(port) for _ in range(6)]
    writers = [browser.call(f"text {number}")["pid"] for number, browser in enumerate(browsers)]
    crossed = 0
    for _ in range(200):  # read on until workers other than the writers answered
        for number, browser in enumerate(browsers):
            answer = browser.call()
            assert answer["text"] == f"text {number}"
            crossed += answer["pid"] != writers[number]
        if crossed >= 3:
            break
    assert crossed >= 3, "sessions should be read by other workers than the one that wrote them"


@pytest.mark.processes
@pytest.mark.parametrize("engine", ["cache", "cached_db"])
def test_sessions_written_by_one_worker_are_read_by_another(scratch: Scratch, tmp_path: Path, engine: str) -> None:
    server = Server(
        scratch, tmp_path, MEMDB_TEST_MODE="host", MEMDB_TEST_HOST_DIRECTORY=str(tmp_path),
        MEMDB_TEST_SESSION_ENGINE=f"django.contrib.sessions.backends.{engine}",
    )
    try:
        assert_sessions_cross_workers(server.port)
    finally:
        server.stop()


def test_values_of_other_types_are_pickled_with_djangos_protocol() -> None:
    assert MemDBCache.pickle_protocol == pickle.HIGHEST_PROTOCOL
