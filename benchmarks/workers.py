"""Requests per second of gunicorn workers sharing the in-memory tables, host mode against cluster mode.

Run from the repository root (not part of the test suite)::

    python -m benchmarks.workers [--workers 1,3,6] [--modes host,cluster] [--clients 4]
                                 [--seconds 10] [--conn-max-age 0,60]

Each configuration gets a scratch PostgreSQL default database (``tests.settings_cluster``)
and a gunicorn of its own (sync workers), warmed up until every worker has
answered. Then ``--clients`` threads send POST requests for ``--seconds``
seconds, each request one create of an in-memory model (``Scratchpad``) and
one create of a persistent one (``Entry``) under the ``commit`` policy: a
request is answered once its row is journaled.

``CONN_MAX_AGE``: Django's default, 0, opens new database connections for
every request (and cluster mode checks that the server still holds the
tables on each new one); a deployment often keeps them (60 here). Both are
measured by default, as the difference is large.
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from benchmarks.bench import ROOT, migrate, progress, scratch_database, table

SETTINGS = "tests.settings_cluster"
PATH = "/both/"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _post(connection: http.client.HTTPConnection, text: str) -> bytes:
    body = urllib.parse.urlencode({"text": text})
    connection.request("POST", PATH, body, {"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data[:300]!r}")
    return data


class Gunicorn:
    def __init__(self, env: dict[str, str], workers: int, log: str) -> None:
        self.port = _free_port()
        self.log = open(log, "w")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "tests.wsgi:application", "--workers", str(workers),
             "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "20", "--backlog", "64"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.workers = workers

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def warm_up(self) -> int:
        """Until every worker answered (each one's first use sets up the tables); the requests sent."""
        pids: set[bytes] = set()
        sent = 0
        deadline = time.monotonic() + 120
        while len(pids) < self.workers:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("gunicorn did not start; see its log")
            try:
                data = _post(self.connection(), "warm up")
            except OSError:
                time.sleep(0.1)
                continue
            pids.add(data.split(b'"pid": ')[-1])
            threads = [threading.Thread(target=lambda: _post(self.connection(), "warm up")) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sent += 1 + len(threads)
        return sent

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(60)
        self.log.close()


def load(server: Gunicorn, clients: int, seconds: float) -> tuple[int, float]:
    """Requests answered to ``clients`` threads, each with its own (re-opened) connection, and the time."""
    counts = [0] * clients
    errors: list[BaseException] = []
    stop = threading.Event()

    def client(number: int) -> None:
        connection = server.connection()
        try:
            while not stop.is_set():
                _post(connection, f"client {number}")
                counts[number] += 1
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}")
    return sum(counts), elapsed


def _admin(statement: str, params: list[Any]) -> list[Any]:
    import psycopg

    from tests.databases import default_database

    settings = default_database()
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname="postgres", autocommit=True
    ) as connection:
        return connection.execute(statement, params).fetchall()  # type: ignore[arg-type]


def transactions(name: str) -> int:
    """Transactions committed in database ``name`` so far: each statement in autocommit is one."""
    rows = _admin("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [name])
    return int(rows[0][0]) if rows else 0


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU time of each process still alive."""
    ticks = os.sysconf("SC_CLK_TCK")
    times = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return times


def processes(server: Gunicorn, name: str) -> tuple[list[int], list[int]]:
    """The pids of the gunicorn workers and of the server's backends for database ``name``."""
    with open(f"/proc/{server.process.pid}/task/{server.process.pid}/children") as children:
        workers = [int(pid) for pid in children.read().split()]
    backends = [int(row[0]) for row in _admin("SELECT pid FROM pg_stat_activity WHERE datname = %s", [name])]
    return workers, backends


def used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def run_one(
    mode: str, workers: int, max_age: int, clients: int, seconds: float, logs: str
) -> tuple[float, float, float, float]:
    """Requests per second, server transactions per request (warm-up included), and CPU ms per request
    of the workers and of the server's backends (those that lasted through the load: with
    CONN_MAX_AGE=0 they do not, and the figure is left out)."""
    with scratch_database("postgresql") as env, tempfile.TemporaryDirectory(prefix="memdb-workers-") as directory:
        env.update(
            DJANGO_SETTINGS_MODULE=SETTINGS, MEMDB_TEST_APP_MODE=mode, MEMDB_TEST_DURABILITY="commit",
            MEMDB_TEST_HOST_DIRECTORY=directory, MEMDB_TEST_CONN_MAX_AGE=str(max_age),
        )
        migrate(env)
        time.sleep(1)  # backends flush their statistics when they end
        before = transactions(env["MEMDB_TEST_DB_NAME"])
        server = Gunicorn(env, workers, os.path.join(logs, f"{mode}-{workers}-{max_age}.log"))
        try:
            warm = server.warm_up()
            workers_pids, backend_pids = processes(server, env["MEMDB_TEST_DB_NAME"])
            cpu = cpu_seconds(workers_pids), cpu_seconds(backend_pids)
            count, elapsed = load(server, clients, seconds)
            cpu_after = cpu_seconds(workers_pids), cpu_seconds(backend_pids)
        finally:
            server.stop()
        time.sleep(1)
        per_request = (transactions(env["MEMDB_TEST_DB_NAME"]) - before) / (warm + count)
        workers_ms = used(cpu[0], cpu_after[0]) / count * 1000
        backends_ms = used(cpu[1], cpu_after[1]) / count * 1000 if max_age else float("nan")
        return count / elapsed, per_request, workers_ms, backends_ms


def run(modes: Sequence[str], worker_counts: Sequence[int], ages: Sequence[int], clients: int, seconds: float) -> str:
    logs = tempfile.mkdtemp(prefix="memdb-workers-logs-")
    rows, costs = [], []
    for max_age in ages:
        for mode in modes:
            cells = [f"{mode}, CONN_MAX_AGE={max_age}"]
            cost = [f"{mode}, CONN_MAX_AGE={max_age}"]
            for workers in worker_counts:
                progress(f"{mode} mode, {workers} workers, CONN_MAX_AGE={max_age}")
                rate, statements, workers_ms, backends_ms = run_one(mode, workers, max_age, clients, seconds, logs)
                cells.append(f"{rate:.0f}")
                cost.append(f"{statements:.1f} / {workers_ms:.1f} / {backends_ms:.1f}")
            rows.append(cells)
            costs.append(cost)
    headers = ["mode (storage on PostgreSQL)", *(f"{count} worker{'s' * (count > 1)}" for count in worker_counts)]
    return (
        f"requests/s, {clients} concurrent clients, {seconds:g} s each; a request = one in-memory create "
        f"+ one persisted create under 'commit'. One run; machine: {os.cpu_count()} CPUs; logs in {logs}\n\n"
        + table(headers, rows)
        + "\n\nper request: PostgreSQL transactions (each statement in autocommit is one) / CPU ms of the "
        "workers / CPU ms of the server's backends\n\n"
        + table(headers, costs)
    )


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,3,6", help="gunicorn worker counts (default 1,3,6)")
    parser.add_argument("--modes", default="host,cluster", help="MEMDB_MODE values (default host,cluster)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (default 4)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per configuration")
    parser.add_argument("--conn-max-age", default="0,60", help="CONN_MAX_AGE values (default 0,60)")
    args = parser.parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",")]
    unknown = set(modes) - {"process", "host", "cluster"}
    if unknown:
        parser.error(f"--modes: unknown {', '.join(sorted(unknown))}")
    print(run(modes, _numbers(args.workers), _numbers(args.conn_max_age), args.clients, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
