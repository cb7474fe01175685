"""A PostgreSQL or MariaDB server of one test's own, which the test may restart or crash.

The machine's servers are shared by the whole run; what happens to in-memory
tables when their server goes down is tested on a private one, started from
an empty data directory on a free port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing_programs(kind: str) -> str | None:
    needed = ("initdb", "pg_ctl", "runuser") if kind == "postgresql" else ("mariadb-install-db", "mariadbd")
    missing = [name for name in needed if shutil.which(name) is None and not Path(f"/usr/sbin/{name}").exists()]
    if kind == "postgresql" and os.geteuid() == 0 and not missing:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("a 'postgres' user to run initdb as")
    return ", ".join(missing) or None


class PrivateServer:
    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        if kind == "postgresql":
            # initdb runs as the postgres user, who cannot enter pytest's private directories.
            directory = Path(tempfile.mkdtemp(prefix="memdb-pg-"))
            directory.chmod(0o777)
        else:
            directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.port = _free_port()
        self.data = directory / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "server.log"
        if kind == "postgresql":
            self._as_owner(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        else:
            subprocess.run(
                ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", "--user=root",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                check=True, capture_output=True,
            )
        self.start()

    def _as_owner(self, command: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + command, check=True, capture_output=True)

    def env(self) -> dict[str, str]:
        """Variables that point the test project's default database here."""
        if self.kind == "postgresql":
            return {"MEMDB_TEST_PG_HOST": "127.0.0.1", "MEMDB_TEST_PG_PORT": str(self.port)}
        return {"MEMDB_TEST_MYSQL_HOST": "127.0.0.1", "MEMDB_TEST_MYSQL_PORT": str(self.port)}

    def start(self) -> None:
        if self.kind == "postgresql":
            options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
            self._as_owner(["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"])
        else:
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    ["mariadbd", "--no-defaults", f"--datadir={self.data}", "--user=root", f"--port={self.port}",
                     "--bind-address=127.0.0.1", f"--socket={self.directory / 'mysqld.sock'}",
                     f"--pid-file={self.directory / 'mysqld.pid'}", "--skip-log-bin",
                     "--innodb-flush-log-at-trx-commit=2"],
                    stdout=log, stderr=subprocess.STDOUT,
                )
        self._wait_until_it_answers()

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    time.sleep(0.2)  # listening comes just before accepting logins
                    return
            except OSError:
                if time.monotonic() > deadline:
                    problem = self.log.read_text()
                    raise RuntimeError(f"the private {self.kind} server did not start: {problem}") from None
                time.sleep(0.1)

    def stop(self, crash: bool = False) -> None:
        """A clean shutdown, or a crash (PostgreSQL: immediate stop; MariaDB: SIGKILL)."""
        if self.kind == "postgresql":
            mode = "immediate" if crash else "fast"
            self._as_owner(["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"])
        elif self.process is not None:
            self.process.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
            self.process.wait(START_TIMEOUT)
            self.process = None

    def restart(self, crash: bool = False) -> None:
        self.stop(crash)
        self.start()

    def close(self) -> None:
        try:
            self.stop()
        except (subprocess.CalledProcessError, OSError):
            pass
        if self.kind == "postgresql":
            shutil.rmtree(self.directory, ignore_errors=True)
