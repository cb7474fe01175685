"""Adding a processor to a project with stored data: the restore fails loudly, ``--rewrite`` moves the data."""

from __future__ import annotations

import json
import zlib

import pytest

from tests.processes import Scratch

pytestmark = pytest.mark.processes

COMPRESS = "tests.processors_zlib.compress"


def test_adding_compression_then_rewriting_loses_nothing(scratch: Scratch) -> None:
    written = scratch.run("fill")["expected"]
    plain = scratch.stored()
    assert {s.codec for s in plain} == {""} and any(s.kind == "journal" for s in plain)

    # Compression connected as it is: the stored data no longer restores, and is kept.
    errors = scratch.run("dump", "--zlib")["errors"]
    assert set(errors) == {"tests.Other", "tests.Persistent"}
    assert "Chain recorded in storage for this data: none; " in errors["tests.Persistent"]
    assert "memdb_spool --rewrite --model tests.Persistent" in errors["tests.Persistent"]
    refused = scratch.run("rewrite", "--zlib")["refused"]
    assert refused.startswith("Nothing was rewritten:\n")
    assert "Memory must hold exactly what storage holds" in refused
    assert scratch.stored() == plain

    # A store_load processor that reads both formats: the rewrite compresses everything.
    output = scratch.run("rewrite", "--zlib-either")["output"]
    assert "tests.Persistent: snapshot of 5 rows" in output
    assert f"written with [{COMPRESS}] (was: no processors)" in output
    stored = scratch.stored()
    assert {(s.kind, s.modelname, s.codec) for s in stored} == {
        ("snapshot", "Persistent", COMPRESS), ("snapshot", "Other", COMPRESS),
    }
    assert all(json.loads(zlib.decompress(s.data)) for s in stored)

    # From now on the compression alone reads it all.
    assert scratch.dump("--zlib") == written


def test_a_rewrite_whose_chains_do_not_read_back_changes_nothing(scratch: Scratch) -> None:
    scratch.run("fill")
    plain = scratch.stored()
    # Compressing on save, but reading only uncompressed data (no processor on load).
    refused = scratch.run("rewrite", "--zlib-save-only")["refused"]
    assert "the chains connected now cannot store and read it back" in refused
    assert scratch.stored() == plain
