"""Several processes: the lease of per-process mode, and host mode behind gunicorn."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.processes import Scratch
from tests.servers import Server, Worker

pytestmark = pytest.mark.processes


def test_a_second_writer_is_refused_not_clobbered(scratch: Scratch) -> None:
    first = Worker(scratch, "first")
    first.ask("write a1")
    second = Worker(scratch, "second")
    refusal = second.ask("write b1", "error")
    assert "written by another process" in refusal and f"pid {first.pid}" in refusal
    assert second.ask("texts") == ["a1"]  # reading works everywhere
    first.ask("write a2")
    first.child.finish().check()  # a normal exit hands the lease over...
    stale = second.ask("write b2", "error")
    assert "after this process loaded them" in stale  # ...but not to an older copy
    second.child.finish().check()

    third = Worker(scratch, "third")
    third.ask("write c1")
    third.child.send(signal.SIGKILL)  # dies holding the lease
    fourth = Worker(scratch, "fourth")
    fourth.ask("write d1")  # its pid is gone on this host: taken over at once
    fourth.child.finish().check()
    assert [row["text"] for row in scratch.dump()["tests.Persistent"]] == ["a1", "a2", "c1", "d1"]


def test_host_mode_workers_share_one_truth(scratch: Scratch, tmp_path: Path) -> None:
    server = Server(scratch, tmp_path, MEMDB_TEST_MODE="host", MEMDB_TEST_HOST_DIRECTORY=str(tmp_path))
    try:
        texts = [f"t{number}" for number in range(30)]
        pids = server.post_each(texts)
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)  # gunicorn starts a new worker; it joins the file
        for number in range(30, 40):
            texts.append(f"t{number}")
            assert server.post(texts[-1])["texts"] == texts
    finally:
        server.stop()
    # All workers gone: restored from storage.
    restarted = Server(scratch, tmp_path, MEMDB_TEST_MODE="host", MEMDB_TEST_HOST_DIRECTORY=str(tmp_path))
    try:
        assert restarted.get()["texts"] == texts
    finally:
        restarted.stop()


def test_host_mode_another_process_spools_what_a_killed_one_left(scratch: Scratch, tmp_path: Path) -> None:
    # Under the "shutdown" policy nothing is written before exit: the change of a
    # killed worker is only in the shared file, and a surviving worker writes it.
    server = Server(
        scratch, tmp_path, MEMDB_TEST_MODE="host", MEMDB_TEST_HOST_DIRECTORY=str(tmp_path),
        MEMDB_TEST_DURABILITY="shutdown",
    )
    try:
        answer = server.post("kept by the others")
        os.kill(answer["pid"], signal.SIGKILL)
        assert server.get()["texts"] == ["kept by the others"]
    finally:
        server.stop()
    assert [row["text"] for row in scratch.dump()["tests.Persistent"]] == ["kept by the others"]


def test_host_mode_a_surviving_process_writes_what_a_killed_one_left(scratch: Scratch, tmp_path: Path) -> None:
    host_mode = {
        "MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path), "MEMDB_TEST_DURABILITY": "shutdown",
    }
    killed = Worker(scratch, "killed", **host_mode)
    survivor = Worker(scratch, "survivor", **host_mode)
    killed.ask("write left behind")
    assert survivor.ask("texts") == ["left behind"]  # the same file
    killed.child.send(signal.SIGKILL)  # nothing of it was written to storage
    survivor.child.finish().check()  # its exit writes what the killed one left
    assert [row["text"] for row in scratch.dump()["tests.Persistent"]] == ["left behind"]
