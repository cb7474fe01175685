"""Several processes: the lease of per-process mode, and host mode behind gunicorn."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.processes import Child, Scratch

pytestmark = pytest.mark.processes


class Worker:
    """``python -m tests.worker``: one process, commands on stdin."""

    def __init__(self, database: Scratch, name: str, **env: str) -> None:
        self.child = Child(
            [sys.executable, "-m", "tests.worker"], database.env(**env),
            database.directory / f"{name}.stderr", subprocess.PIPE,
        )
        database.children.append(self.child)
        self.pid = self.child.wait_for("ready", timeout=60)

    def ask(self, command: str, answer: str = "ok") -> Any:
        assert self.child.popen.stdin is not None
        self.child.popen.stdin.write(command + "\n")
        self.child.popen.stdin.flush()
        return self.child.wait_for(answer, timeout=60)


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """gunicorn with several workers serving tests.wsgi on 127.0.0.1."""

    def __init__(self, database: Scratch, directory: Path, **env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/items/"
        environment = database.env(MEMDB_TEST_MODE="host", MEMDB_TEST_HOST_DIRECTORY=str(directory), **env)
        self.log = (directory / f"gunicorn-{self.port}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "tests.wsgi:application", "--workers", "3",
             "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "20"],
            cwd=Path(__file__).resolve().parent.parent, env=environment,
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.get()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop(signal.SIGKILL)
                    raise

    def request(self, data: bytes | None) -> dict[str, Any]:
        request = urllib.request.Request(self.url, data=data, headers={"Connection": "close"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def get(self) -> dict[str, Any]:
        return self.request(None)

    def post(self, text: str) -> dict[str, Any]:
        return self.request(urllib.parse.urlencode({"text": text}).encode())

    def stop(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)
        self.process.wait(60)
        self.log.close()


def test_host_mode_workers_share_one_truth(scratch: Scratch, tmp_path: Path) -> None:
    server = Server(scratch, tmp_path)
    try:
        pids, texts = set(), []
        for number in range(30):
            texts.append(f"t{number}")
            answer = server.post(texts[-1])
            pids.add(answer["pid"])
            assert answer["texts"] == texts  # every worker sees every row
        assert len(pids) >= 2, "the requests should reach several workers"
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)  # gunicorn starts a new worker; it joins the file
        for number in range(30, 40):
            texts.append(f"t{number}")
            assert server.post(texts[-1])["texts"] == texts
    finally:
        server.stop()
    restarted = Server(scratch, tmp_path)  # all workers gone: restored from storage
    try:
        assert restarted.get()["texts"] == texts
    finally:
        restarted.stop()


def test_host_mode_another_process_spools_what_a_killed_one_left(scratch: Scratch, tmp_path: Path) -> None:
    # Under the "shutdown" policy nothing is written before exit: the change of a
    # killed worker is only in the shared file, and a surviving worker writes it.
    server = Server(scratch, tmp_path, MEMDB_TEST_DURABILITY="shutdown")
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
