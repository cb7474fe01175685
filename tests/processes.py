"""Real child processes of the test project, each test on a scratch default database.

A child is ``python -m tests.child <action> [options]`` (see tests/child.py),
run from the repository root with the settings module and database chosen
by environment variables, as a deployment would start it. Children report
on stdout with ``@key <json>`` lines.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import databases

REPO = Path(__file__).resolve().parent.parent
# Generous: only reached when something hangs, never a measure of speed.
TIMEOUT = 120.0
SETTINGS = ("tests.settings", "tests.settings_manual")
STORAGE_TABLE = "django_memdb_persistentstorage"
JOURNAL_TABLE = "django_memdb_persistentjournal"
# Variables of the test settings that a child must not inherit by accident.
_CHILD_ONLY = (
    "MEMDB_TEST_DURABILITY", "MEMDB_TEST_FLUSH_INTERVAL", "MEMDB_TEST_MODE", "MEMDB_TEST_HOST_DIRECTORY",
    "MEMDB_TEST_LEASE_SECONDS", "DJANGO_SETTINGS_MODULE",
)


def _server_settings() -> dict[str, Any]:
    return databases.default_database()


def _admin_connection(kind: str) -> Any:
    """An autocommit connection to the server, outside any test database."""
    server = _server_settings()
    if kind == "postgresql":
        import psycopg

        return psycopg.connect(
            host=server["HOST"], port=server["PORT"], user=server["USER"], dbname="postgres",
            autocommit=True, connect_timeout=10,
        )
    import MySQLdb

    connection = MySQLdb.connect(
        host=server["HOST"], port=int(server["PORT"]), user=server["USER"],
        password=server["PASSWORD"], connect_timeout=10, charset="utf8mb4",
    )
    connection.autocommit(True)
    return connection


def _execute(connection: Any, sql: str) -> None:
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
    finally:
        cursor.close()


@dataclass(frozen=True)
class Stored:
    """A row of PersistentStorage (``snapshot``) or PersistentJournal (``journal``)."""

    kind: str
    id: int
    application: str
    modelname: str
    codec: str
    rows: int | None
    data: bytes


@dataclass
class Result:
    """A finished child: exit status, its ``@key`` records and its output."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    records: dict[str, list[Any]] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        """The last value reported under ``key``."""
        values = self.records.get(key)
        assert values, f"the child reported no @{key}.\n{self.describe()}"
        return values[-1]

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def describe(self) -> str:
        return (
            f"command: {' '.join(self.command)}\nexit status: {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-6000:]}\n--- stderr ---\n{self.stderr[-6000:]}"
        )

    def check(self, returncode: int = 0) -> Result:
        assert self.returncode == returncode, f"expected exit status {returncode}.\n{self.describe()}"
        return self


def _parse(line: str) -> tuple[str, Any] | None:
    if not line.startswith("@"):
        return None
    key, _, payload = line[1:].rstrip("\n").partition(" ")
    return key, json.loads(payload) if payload else None


class Child:
    """A running child; its stdout is read by a thread so the test can wait for a record."""

    def __init__(self, command: list[str], env: dict[str, str], stderr_path: Path, stdin: Any) -> None:
        self.command = command
        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.popen = subprocess.Popen(
            command, cwd=REPO, env=env, stdin=stdin, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, encoding="utf-8",
        )
        self.lines: list[str] = []
        # Records read while waiting for another key, for a later wait_for.
        self._unclaimed: dict[str, Any] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_for(self, key: str, timeout: float = TIMEOUT) -> Any:
        """Block until the child reports ``key`` (or return it if it did already); its value."""
        if key in self._unclaimed:
            return self._unclaimed.pop(key)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                pytest.fail(f"no @{key} from the child within {timeout} s.\n{self.result().describe()}")
            if line is None:
                pytest.fail(f"the child ended before reporting @{key}.\n{self.wait().describe()}")
            record = _parse(line)
            if record is not None and record[0] == key:
                return record[1]
            if record is not None:
                self._unclaimed[record[0]] = record[1]

    def wait_for_any(self, *keys: str, timeout: float = TIMEOUT) -> tuple[str, Any]:
        """Block until the child reports one of ``keys``; (key, value)."""
        deadline = time.monotonic() + timeout
        while True:
            for key in keys:
                if key in self._unclaimed:
                    return key, self._unclaimed.pop(key)
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                pytest.fail(f"none of {keys} from the child within {timeout} s.\n{self.result().describe()}")
            if line is None:
                pytest.fail(f"the child ended before reporting any of {keys}.\n{self.wait().describe()}")
            record = _parse(line)
            if record is not None and record[0] in keys:
                return record
            if record is not None:
                self._unclaimed[record[0]] = record[1]

    def stderr_text(self) -> str:
        """What the child wrote to stderr so far (it may still be running)."""
        return self._stderr_path.read_text(encoding="utf-8", errors="replace")

    def send(self, signum: int) -> Result:
        """Deliver ``signum`` and wait for the child to end."""
        self.popen.send_signal(signum)
        return self.wait()

    def finish(self) -> Result:
        """Let a waiting child return normally (it reads stdin until end of file)."""
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        return self.wait()

    def wait(self, timeout: float = TIMEOUT) -> Result:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"the child did not end within {timeout} s.\n{self.result().describe()}")
        return self.result()

    def stop(self) -> None:
        if self.alive:
            self.popen.kill()
        self.popen.wait()
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            self.popen.stdin.close()
        self._reader.join(TIMEOUT)
        self._stderr.close()
        if self.popen.stdout is not None:
            self.popen.stdout.close()

    def result(self) -> Result:
        self._reader.join(TIMEOUT)
        self._stderr.close()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        records: dict[str, list[Any]] = {}
        for line in self.lines:
            record = _parse(line)
            if record is not None:
                records.setdefault(record[0], []).append(record[1])
        return Result(
            command=self.command,
            returncode=self.popen.returncode if self.popen.returncode is not None else -1,
            stdout="".join(self.lines),
            stderr=self._stderr_path.read_text(encoding="utf-8", errors="replace"),
            records=records,
        )


class Scratch:
    """A scratch default database of one test, and the children that use it."""

    def __init__(self, kind: str, name: str, directory: Path) -> None:
        self.kind = kind
        self.name = name
        self.directory = directory
        self.children: list[Child] = []

    # Children

    def env(self, settings: str = SETTINGS[0], **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CHILD_ONLY}
        env.update(
            DJANGO_SETTINGS_MODULE=settings,
            MEMDB_TEST_DATABASE=self.kind,
            MEMDB_TEST_DB_NAME=self.name,
            # A restart here is a new process restoring from storage, as in MEMDB_MODE 'process'.
            MEMDB_TEST_MODE="process",
            PYTHONUNBUFFERED="1",
            PYTHONWARNINGS="error::DeprecationWarning,error::PendingDeprecationWarning",
        )
        env.update(extra)
        return env

    def _spawn(self, arguments: list[str], env: dict[str, str], stdin: Any) -> Child:
        stderr = self.directory / f"child-{len(self.children) + 1}.stderr"
        child = Child([sys.executable, *arguments], env, stderr, stdin)
        self.children.append(child)
        return child

    def run(
        self, action: str, *options: str, settings: str = SETTINGS[0], env: dict[str, str] | None = None,
        returncode: int | None = 0,
    ) -> Result:
        """Run ``tests.child <action>`` to its end; checks the exit status unless None."""
        environment = self.env(settings, **(env or {}))
        child = self._spawn(["-m", "tests.child", action, *options], environment, subprocess.DEVNULL)
        result = child.wait()
        return result if returncode is None else result.check(returncode)

    def start(
        self, action: str, *options: str, settings: str = SETTINGS[0], env: dict[str, str] | None = None,
    ) -> Child:
        """Start ``tests.child <action> --wait`` and return once it reports @ready."""
        environment = self.env(settings, **(env or {}))
        child = self._spawn(["-m", "tests.child", action, "--wait", *options], environment, subprocess.PIPE)
        child.wait_for("ready")
        return child

    def launch(
        self, action: str, *options: str, settings: str = SETTINGS[0], env: dict[str, str] | None = None,
    ) -> Child:
        """Start ``tests.child <action>`` and return at once (the test reads its records as they come)."""
        environment = self.env(settings, **(env or {}))
        return self._spawn(["-m", "tests.child", action, *options], environment, subprocess.DEVNULL)

    def manage(self, *arguments: str, settings: str = SETTINGS[0]) -> Result:
        child = self._spawn(["manage.py", *arguments], self.env(settings), subprocess.DEVNULL)
        return child.wait().check()

    def dump(self, *options: str, settings: str = SETTINGS[0], errors: bool = False) -> dict[str, Any]:
        """Every row of every persistent model, as a fresh process restores them."""
        result = self.run("dump", *options, settings=settings)
        if not errors:
            assert result["errors"] == {}, result.describe()
        return result["dump"]

    def stop_children(self) -> None:
        for child in self.children:
            child.stop()

    # What the default database stores, read without Django

    def _connect(self) -> Any:
        server = _server_settings()
        if self.kind == "sqlite":
            return sqlite3.connect(self.name, timeout=TIMEOUT)
        if self.kind == "postgresql":
            import psycopg

            return psycopg.connect(
                host=server["HOST"], port=server["PORT"], user=server["USER"], dbname=self.name,
                autocommit=True,
            )
        import MySQLdb

        connection = MySQLdb.connect(
            host=server["HOST"], port=int(server["PORT"]), user=server["USER"], password=server["PASSWORD"],
            database=self.name, charset="utf8mb4",
        )
        connection.autocommit(True)
        return connection

    def stored(self) -> list[Stored]:
        """Snapshot rows, then journal rows, each in id order."""
        quote = (lambda name: f"`{name}`") if self.kind == "mariadb" else (lambda name: f'"{name}"')
        columns = ", ".join(quote(c) for c in ("id", "application", "modelname", "codec", "rows", "data"))
        connection = self._connect()
        try:
            found = []
            for kind, table in (("snapshot", STORAGE_TABLE), ("journal", JOURNAL_TABLE)):
                cursor = connection.cursor()
                cursor.execute(f"SELECT {columns} FROM {quote(table)} ORDER BY {quote('id')}")
                for row in cursor.fetchall():
                    found.append(Stored(kind, row[0], row[1], row[2], row[3], row[4], bytes(row[5])))
                cursor.close()
            return found
        finally:
            connection.close()

    def overwrite(self, stored: Stored, data: bytes) -> None:
        """Replace the blob of one stored row, as a damaged or hand-edited database would hold it."""
        quote = (lambda name: f"`{name}`") if self.kind == "mariadb" else (lambda name: f'"{name}"')
        mark = "?" if self.kind == "sqlite" else "%s"
        table = STORAGE_TABLE if stored.kind == "snapshot" else JOURNAL_TABLE
        connection = self._connect()
        try:
            cursor = connection.cursor()
            cursor.execute(
                f"UPDATE {quote(table)} SET {quote('data')} = {mark} WHERE {quote('id')} = {mark}", [data, stored.id]
            )
            cursor.close()
            if self.kind == "sqlite":
                connection.commit()
        finally:
            connection.close()

    def stored_for(self, modelname: str, kind: str | None = None) -> list[Stored]:
        return [s for s in self.stored() if s.modelname == modelname and (kind is None or s.kind == kind)]

    # The database itself

    def create(self, template: Scratch | None = None) -> None:
        """Create the database, as a copy of ``template`` if given (it must be idle)."""
        if self.kind == "sqlite":
            if template is not None:
                shutil.copyfile(template.name, self.name)
            return
        connection = _admin_connection(self.kind)
        try:
            if self.kind == "postgresql":
                copy = f" TEMPLATE {template.name}" if template else ""
                _create_postgresql(connection, f"CREATE DATABASE {self.name}{copy}")
            else:
                _execute(connection, f"CREATE DATABASE {self.name} CHARACTER SET utf8mb4")
                if template is not None:
                    _copy_mariadb_tables(connection, template.name, self.name)
        finally:
            connection.close()

    def drop(self) -> None:
        if self.kind == "sqlite":
            return
        connection = _admin_connection(self.kind)
        try:
            force = " WITH (FORCE)" if self.kind == "postgresql" else ""
            _execute(connection, f"DROP DATABASE IF EXISTS {self.name}{force}")
        finally:
            connection.close()


def _create_postgresql(connection: Any, sql: str) -> None:
    """The server may still be closing the session of the child that used the template."""
    import psycopg

    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            _execute(connection, sql)
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _copy_mariadb_tables(connection: Any, source: str, target: str) -> None:
    """Schema (foreign keys included) and rows of every table; MariaDB has no CREATE DATABASE ... TEMPLATE."""
    cursor = connection.cursor()
    try:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
            [source],
        )
        tables = [row[0] for row in cursor.fetchall()]
        cursor.execute(f"USE `{target}`")
        cursor.execute("SET foreign_key_checks = 0")
        for table in tables:
            cursor.execute(f"SHOW CREATE TABLE `{source}`.`{table}`")
            cursor.execute(cursor.fetchone()[1])
            cursor.execute(f"INSERT INTO `{target}`.`{table}` SELECT * FROM `{source}`.`{table}`")
        cursor.execute("SET foreign_key_checks = 1")
    finally:
        cursor.close()


def _unique_name(directory: Path, kind: str, prefix: str) -> str:
    if kind == "sqlite":
        return str(directory / f"{prefix}.sqlite3")
    return f"memdb_{prefix}_{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    """A default database that a first child migrated with ``manage.py migrate``, once per run."""
    kind = databases.kind()
    directory = tmp_path_factory.mktemp("template")
    template = Scratch(kind, _unique_name(directory, kind, "template"), directory)
    template.create()
    try:
        template.manage("migrate", "--noinput", "--verbosity", "0")
        yield template
    finally:
        template.stop_children()
        template.drop()


@pytest.fixture
def scratch(migrated_template: Scratch, tmp_path: Path) -> Iterator[Scratch]:
    """A new default database for this test only (a copy of the migrated one); dropped afterwards."""
    kind = migrated_template.kind
    database = Scratch(kind, _unique_name(tmp_path, kind, "scratch"), tmp_path)
    database.create(template=migrated_template)
    try:
        yield database
    finally:
        database.stop_children()
        database.drop()


KILLED = -signal.SIGKILL
