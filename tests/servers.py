"""Long-lived processes of the test project: a worker obeying stdin, gunicorn serving HTTP."""

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

from tests.processes import REPO, Child, Result, Scratch


class Worker:
    """``python -m tests.worker``: one process, commands on stdin."""

    def __init__(self, database: Scratch, name: str, settings: str = "tests.settings", **env: str) -> None:
        self.child = Child(
            [sys.executable, "-m", "tests.worker"], database.env(settings, **env),
            database.directory / f"{name}.stderr", subprocess.PIPE,
        )
        database.children.append(self.child)
        self.pid = self.child.wait_for("ready", timeout=60)

    def send(self, command: str) -> Result:
        """Send a command the worker will not live to answer; its end."""
        assert self.child.popen.stdin is not None
        self.child.popen.stdin.write(command + "\n")
        self.child.popen.stdin.flush()
        return self.child.wait()

    def ask(self, command: str, answer: str = "ok") -> Any:
        assert self.child.popen.stdin is not None
        self.child.popen.stdin.write(command + "\n")
        self.child.popen.stdin.flush()
        return self.child.wait_for(answer, timeout=60)

    def call(self, command: str) -> tuple[str, Any]:
        """Send a command; ("ok", value) or ("error", message)."""
        assert self.child.popen.stdin is not None
        self.child.popen.stdin.write(command + "\n")
        self.child.popen.stdin.flush()
        return self.child.wait_for_any("ok", "error", timeout=60)



def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class HttpServer:
    """A server of tests.wsgi on 127.0.0.1 in a session of its own; see Server and RunServer."""

    name: str

    def __init__(
        self, database: Scratch, directory: Path, command: list[str], settings: str, env: dict[str, str],
    ) -> None:
        self.port = _free_port()
        self.log_path = directory / f"{self.name}-{self.port}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, *command, *self.arguments()], cwd=REPO, env=database.env(settings, **env),
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.probe()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop(signal.SIGKILL)
                    raise
                time.sleep(0.05)

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def probe(self) -> None:
        """Raise OSError until the server answers."""
        raise NotImplementedError

    def request(self, data: bytes | None, path: str = "/items/") -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, data=data, headers={"Connection": "close"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def get(self) -> dict[str, Any]:
        return self.request(None)

    def post(self, text: str) -> dict[str, Any]:
        return self.request(urllib.parse.urlencode({"text": text}).encode())

    def post_each(self, texts: list[str]) -> set[int]:
        """Post one text a request; every answer must list all texts so far. Returns the pids that answered."""
        pids = set()
        for number, text in enumerate(texts, 1):
            answer = self.post(text)
            pids.add(answer["pid"])
            assert answer["texts"] == texts[:number]  # every worker sees every row
        # The kernel may hand a fast run of requests to one worker: read on until another answers.
        for _ in range(500):
            if len(pids) >= 2:
                break
            answer = self.get()
            pids.add(answer["pid"])
            assert answer["texts"] == texts
            time.sleep(0.01)
        assert len(pids) >= 2, "the requests should reach several workers"
        return pids

    def stop(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)
        self.process.wait(60)
        self.log.close()

    def kill(self) -> None:
        """SIGKILL to the master and every worker: nothing flushed at exit."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(60)
        self.log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


class Server(HttpServer):
    """gunicorn with several workers."""

    name = "gunicorn"

    def __init__(self, database: Scratch, directory: Path, settings: str = "tests.settings", **env: str) -> None:
        super().__init__(database, directory, ["-m", "gunicorn", "tests.wsgi:application"], settings, env)

    def arguments(self) -> list[str]:
        return ["--workers", "3", "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "20"]

    def probe(self) -> None:
        self.get()


class RunServer(HttpServer):
    """``manage.py runserver``: one threaded process, no autoreloader.

    Ready once it accepts connections, before any request: the test's own
    requests are the first uses of the in-memory database.
    """

    name = "runserver"

    def __init__(self, database: Scratch, directory: Path, settings: str = "tests.settings", **env: str) -> None:
        super().__init__(database, directory, ["manage.py", "runserver", "--noreload"], settings, env)

    def arguments(self) -> list[str]:
        return [f"127.0.0.1:{self.port}"]

    def probe(self) -> None:
        socket.create_connection(("127.0.0.1", self.port), timeout=10).close()
