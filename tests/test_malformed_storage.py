"""Stored data mutated in many ways: it restores, or blocks its own table with a RestoreError, and nothing else.

Seeded random mutations of real snapshots and journal entries (truncation, byte
flips, wrong types at every level, huge integers, deep nesting, wrong model
labels, missing and extra keys, non-UTF-8, empty, null). For each: the other
tables restore all their rows, the stored bytes are kept, and
``memdb_status`` and ``memdb_restore --dry-run`` still run and report it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections, models

from django_memdb import inspection, lifecycle, registry, restore, rows
from django_memdb.conf import conf
from django_memdb.exceptions import RestoreError
from django_memdb.models import PersistentJournal, PersistentStorage
from tests.models import Keyed, Other, Persistent, Rich, Uuided

pytestmark = pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)

MODELS: list[type[models.Model]] = [Persistent, Other, Keyed, Uuided, Rich]
SEED = 20240229
CASES = 240
DEEP = 200_000

# Values of the wrong type for any place of an item.
ODD_VALUES: list[Any] = [
    None, True, 0, -1, 2**70, -(2**70), 1.5, float("1e308"), "", "x" * 300, "\u00e9\u2603", [], [1, [2]], {},
    {"a": {"b": 1}},
]


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _layout(texts: list[str]) -> bytes:
    return ("[\n" + ",\n".join(texts) + "\n]").encode("utf-8")


def _mutate_item(rng: random.Random, item: Any) -> str:
    """The JSON text of one stored item, damaged in one place."""
    if not isinstance(item, dict) or rng.random() < 0.15:
        return rng.choice([_text(rng.choice(ODD_VALUES)), _deep(rng.choice([50, 2000, DEEP]))])
    item = dict(item)
    kind = rng.choice(["drop", "extra", "pk", "fields", "value", "model", "deleted", "deep-value"])
    if kind == "drop":
        item.pop(rng.choice(["pk", "fields", "model"]), None)
    elif kind == "extra":
        item[rng.choice(["extra", "rows", "deleted", "fields "])] = rng.choice(ODD_VALUES)
    elif kind == "pk":
        item["pk"] = rng.choice(ODD_VALUES)
    elif kind == "fields":
        item["fields"] = rng.choice([v for v in ODD_VALUES if not isinstance(v, dict)])
    elif kind == "value" and isinstance(item.get("fields"), dict) and item["fields"]:
        fields = dict(item["fields"])
        name = rng.choice(sorted(fields))
        fields[name] = rng.choice(ODD_VALUES)
        if rng.random() < 0.2:
            fields.pop(name)
        item["fields"] = fields
    elif kind == "model":
        item["model"] = rng.choice(["tests.other", "tests.gone", "", 7, None])
    elif kind == "deleted":
        item["deleted"] = True
        item["pk"] = rng.choice([item.get("pk"), *ODD_VALUES])
    else:
        marker = "__deep__"
        fields = dict(item.get("fields") or {})
        fields[rng.choice(sorted(fields) or ["text"])] = marker
        item["fields"] = fields
        return _text(item).replace(_text(marker), _deep(rng.choice([40, 900, DEEP])))
    return _text(item)


def _mutate(rng: random.Random, blob: bytes) -> bytes:
    kind = rng.choice(["truncate", "flip", "whole", "item", "item", "item", "list"])
    if kind == "truncate":
        return blob[: rng.randrange(len(blob))]
    if kind == "flip":
        data = bytearray(blob)
        for _ in range(rng.choice([1, 1, 3])):
            position = rng.randrange(len(data))
            data[position] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "whole":
        return rng.choice([
            b"", b"null", b"{}", b"42", b'"text"', b"[]", b"[\n\n]", b"\xff\xfe\x00garbage", b"[\n\xc3\x28\n]",
            _deep(DEEP).encode(), ("[\n" + _deep(DEEP) + "\n]").encode(), blob + b"trailing", b"\n" + blob,
        ])
    items = json.loads(blob)
    texts = [_text(item) for item in items]
    if kind == "list" or not texts:
        return _text(rng.choice([v for v in ODD_VALUES if not isinstance(v, list)])).encode()
    index = rng.randrange(len(texts))
    texts[index] = _mutate_item(rng, items[index])
    if rng.random() < 0.3:
        return ("[" + ",".join(texts) + "]").encode("utf-8")  # not our line layout: parsed whole
    return _layout(texts)


# What a restore should find, computed without the package's decoding.


def _expected_keys(model: type[models.Model], blobs: list[bytes]) -> set[Any]:
    codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
    keys: set[Any] = set()
    for blob in blobs:
        for item in json.loads(blob):
            key = codec.pk_param(item["pk"])
            assert isinstance(key, (int, str)) and not isinstance(key, bool), key
            if item.get("deleted"):
                keys.discard(key)
            else:
                keys.add(key)
    return keys


def _memory(model: type[models.Model]) -> list[tuple[Any, ...]]:
    database = lifecycle.current_database()
    codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
    with database.lock:
        return sorted(
            database.connection.execute(f"SELECT {codec.select_columns} FROM {codec.quoted_table}").fetchall(),
            key=repr,
        )


def _stored() -> list[tuple[str, int, str, bytes]]:
    found = []
    for kind, table in (("snapshot", PersistentStorage), ("journal", PersistentJournal)):
        for pk, modelname, data in table.objects.order_by("id").values_list("id", "modelname", "data"):
            found.append((kind, pk, modelname, bytes(data)))
    return found


def _restart() -> dict[type[models.Model], RestoreError]:
    """Empty every persistent table (not captured) and restore them as a process start does."""
    database = lifecycle.current_database()
    with database.lock:
        for model in registry.persistent_models():
            codec = rows.codec_for(model, connections[conf.MEMDB_NAME])
            with lifecycle.reloading_table(database, model):
                database.connection.execute(f"DELETE FROM {codec.quoted_table}")
        database.failed.clear()
        restore.restore_at_start(database)
        return dict(database.failed)


def _fill() -> None:
    """Each model with a snapshot and journal entries of upserts and deletions."""
    database = lifecycle.current_database()
    Persistent.objects.bulk_create([Persistent(text=f"row {i} ü") for i in range(8)])
    Other.objects.bulk_create([Other(number=i) for i in range(8)])
    Keyed.objects.bulk_create([Keyed(key=f"k{i}", value=i) for i in range(5)])
    Uuided.objects.bulk_create([Uuided(label=f"u{i}") for i in range(4)])
    Rich.objects.create(char="ç", integer=5, big=2**62, floating=0.5, flag=True, amount="1.5", payload={"a": [1]},
                        blob=b"\x00\x01", address="192.0.2.1")
    Rich.objects.create()
    lifecycle.compact(database)
    Persistent.objects.filter(text__startswith="row 1").update(text="changed")
    Persistent.objects.filter(text="row 2 ü").delete()
    Other.objects.create(number=100)
    Other.objects.filter(number=3).delete()
    Keyed.objects.filter(key="k0").update(value=42)
    Uuided.objects.create(label="late")
    Rich.objects.filter(integer=5).update(text="journaled")
    lifecycle.flush(database, raise_errors=True)


@pytest.fixture
def filled() -> Iterator[None]:
    _fill()
    yield
    lifecycle.current_database().failed.clear()


def test_mutated_stored_data_restores_or_blocks_only_its_table(filled: None) -> None:
    originals = _stored()
    by_name = {model.__name__: model for model in MODELS}
    assert {name for _, _, name, _ in originals} >= set(by_name)
    assert {name for kind, _, name, _ in originals if kind == "journal"} >= set(by_name)
    assert _restart() == {}
    expected = {model: _memory(model) for model in MODELS}
    rng = random.Random(SEED)
    outcomes = {"restored": 0, "blocked": 0}
    for case in range(CASES):
        kind, pk, modelname, blob = rng.choice(originals)
        target = by_name[modelname]
        table = PersistentStorage if kind == "snapshot" else PersistentJournal
        mutated = _mutate(rng, blob)
        table.objects.filter(pk=pk).update(data=mutated)
        stored = _stored()
        where = f"case {case}: {kind} {pk} of {modelname} set to {mutated[:120]!r}"
        try:
            failures = _restart()
            for model in MODELS:
                if model is not target:
                    assert _memory(model) == expected[model], where
            if failures:
                outcomes["blocked"] += 1
                assert list(failures) == [target], where
                assert f"tests.{modelname}" in str(failures[target]), where
                assert _memory(target) == [], where
                with pytest.raises(RestoreError):
                    target.objects.count()
            else:
                outcomes["restored"] += 1
                blobs = [data for _, _, name, data in stored if name == modelname]
                keys = {row[0] for row in _memory(target)}
                assert keys == _expected_keys(target, blobs), where
                assert len(keys) == target.objects.count(), where
            assert _stored() == stored, where  # kept byte for byte
            status = {entry.model: entry for entry in inspection.status().tables}
            checks = {result.model: result for result in inspection.dry_run(MODELS)}
            for model in MODELS:
                name = inspection.label(model)
                if model in failures:
                    assert status[name].restore_error, where
                    assert checks[name].error, where
                else:
                    assert status[name].restore_error is None, where
                    if model is not target:
                        assert status[name].stored_error is None and checks[name].error is None, where
        finally:
            table.objects.filter(pk=pk).update(data=blob)
    assert _restart() == {}
    assert {model: _memory(model) for model in MODELS} == expected
    # The mutations reach both outcomes, not only one.
    assert outcomes["blocked"] > CASES // 4 and outcomes["restored"] > 5, outcomes


def test_a_malformed_journal_item_is_named_by_its_place(filled: None) -> None:
    entry = PersistentJournal.objects.filter(modelname="Other").order_by("id").first()
    assert entry is not None
    bad = b'[\n{"model": "tests.other", "pk": [1, 2], "fields": {}}\n]'
    PersistentJournal.objects.filter(pk=entry.pk).update(data=bad)

    failures = _restart()

    assert list(failures) == [Other]
    message = str(failures[Other])
    assert "tests.Other" in message and f"item 0 of journal entry {entry.pk}" in message
    assert "'pk': [1, 2]" in message
    assert len(Persistent.objects.all()) == 7  # the other tables work
