"""A flush keeps the rows it read as their JSON lines: the stored blob is the one the items give."""

from __future__ import annotations

import json

from django_memdb import rows


def test_deleted_line_is_the_encoded_item() -> None:
    for pk in (7, "ü-key", 2**62):
        item = {"model": "tests.persistent", "pk": pk, "fields": {}, "deleted": True}
        assert rows.deleted_line("tests.persistent", pk) == rows.encode_item(item)


def test_encoded_lines_store_the_blob_of_their_items() -> None:
    items = [{"model": "tests.persistent", "pk": n, "fields": {"text": f"row {n} ü"}} for n in range(5000)]
    lines = rows.EncodedLines(map(rows.encode_item, items))
    blob = rows.encode_items(lines)
    assert blob == rows.encode_items(items) == rows.join_encoded(iter(lines))
    assert list(rows.iter_items(blob)) == items == lines.decoded() == list(rows.as_items(lines))
    assert json.loads(rows.encode_items(rows.EncodedLines())) == []
