"""Several processes: the lease of per-process mode, and host mode behind gunicorn."""

from __future__ import annotations

import os
import signal
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.processes import Scratch
from tests.servers import RunServer, Server, Worker

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


def test_host_mode_threaded_runserver_answers_every_request_from_the_first(
    scratch: Scratch, tmp_path: Path
) -> None:
    # The first process of the host empties the shared file while the threads
    # of other requests already connect to it.
    server = RunServer(scratch, tmp_path, MEMDB_TEST_MODE="host", MEMDB_TEST_HOST_DIRECTORY=str(tmp_path))
    texts = [f"r{number}" for number in range(100)]

    def call(number: int) -> Any:
        try:
            return server.post(texts[number // 2]) if number % 2 else server.get()
        except urllib.error.HTTPError as exc:
            return f"{exc}: {exc.read().decode(errors='replace')[:300]}"

    try:
        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(call, range(200)))
        failures = [answer for answer in answers if isinstance(answer, str)]
        assert failures == [], f"{len(failures)} of 200 requests failed:\n{server.log_text()[:8000]}"
        assert sorted(server.get()["texts"]) == sorted(texts)
    finally:
        server.stop()
    assert sorted(row["text"] for row in scratch.dump()["tests.Persistent"]) == sorted(texts)


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


def test_host_mode_a_file_older_than_storage_is_emptied_and_restored(scratch: Scratch, tmp_path: Path) -> None:
    host_mode = {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path)}
    first = Worker(scratch, "first", **host_mode)
    first.ask("write from the file")
    first.child.finish().check()
    ephemeral = Worker(scratch, "ephemeral", MEMDB_TEST_WORKER_MODEL="tests.Ephemeral", **host_mode)
    ephemeral.ask("write not persisted")
    ephemeral.child.finish().check()  # the file stays, with its tables and rows
    scratch.run("mark", "--tag", "elsewhere")  # storage moves on without the file
    second = Worker(scratch, "second", MEMDB_TEST_WORKER_MODEL="tests.Ephemeral", **host_mode)
    assert second.ask("texts") == []  # a new file: what was only in the old one is gone
    second.child.finish().check()
    third = Worker(scratch, "third", **host_mode)
    assert third.ask("texts") == ["from the file", "durable elsewhere"]  # restored from storage
