"""MEMDB_DURABILITY 'interval' and 'shutdown': when committed rows reach storage."""

from __future__ import annotations

import signal
import time

import pytest

from tests.processes import KILLED, TIMEOUT, Child, Scratch

pytestmark = pytest.mark.processes
# A scratch default database per test (see tests/processes.py).

SHUTDOWN = {"MEMDB_TEST_DURABILITY": "shutdown"}


def _stored_text(database: Scratch) -> bytes:
    return b"".join(entry.data for entry in database.stored())


def _wait_until_stored(database: Scratch, marker: bytes, child: Child) -> None:
    """Poll storage until ``marker`` is in it; the deadline is only there for a hang."""
    deadline = time.monotonic() + TIMEOUT
    while marker not in _stored_text(database):
        assert child.alive, child.wait().describe()
        if time.monotonic() > deadline:
            child.stop()
            pytest.fail(f"{marker!r} was never stored.\n{child.result().describe()}")
        time.sleep(0.05)


def test_interval_policy_stores_without_exit_and_survives_sigkill(scratch: Scratch) -> None:
    interval = {"MEMDB_TEST_DURABILITY": "interval", "MEMDB_TEST_FLUSH_INTERVAL": "0.2"}
    child = scratch.start("mark", "--tag", "interval", env=interval)
    written = child.wait_for("expected")

    # The flusher thread stores the change while the process keeps running...
    _wait_until_stored(scratch, b"durable interval", child)
    assert child.alive
    # ...so a SIGKILL after an interval loses nothing.
    assert child.send(signal.SIGKILL).returncode == KILLED
    assert scratch.dump() == written


@pytest.mark.parametrize(
    ("ending", "returncode"),
    [("exit", 0), ("SIGTERM", 128 + signal.SIGTERM), ("SIGINT", -signal.SIGINT)],
)
def test_shutdown_policy_stores_when_the_process_ends(scratch: Scratch, ending: str, returncode: int) -> None:
    child = scratch.start("mark", "--tag", "shutdown", env=SHUTDOWN)
    written = child.wait_for("expected")
    assert b"durable shutdown" not in _stored_text(scratch)  # not before the end

    result = child.finish() if ending == "exit" else child.send(getattr(signal, ending))

    assert result.returncode == returncode, result.describe()
    assert scratch.dump() == written


def test_shutdown_policy_loses_unflushed_writes_on_sigkill(scratch: Scratch) -> None:
    # Expected behaviour: 'shutdown' trades durability for speed. SIGKILL runs
    # no exit handler, so what the process wrote is lost; what earlier
    # processes stored at their exit is kept.
    earlier = scratch.run("mark", "--tag", "earlier", env=SHUTDOWN)["expected"]
    child = scratch.start("mark", "--tag", "lost", env=SHUTDOWN)
    written = child.wait_for("expected")
    assert [row["text"] for row in written["tests.Persistent"]] == ["durable earlier", "durable lost"]

    assert child.send(signal.SIGKILL).returncode == KILLED

    assert scratch.dump() == earlier
    assert b"durable lost" not in _stored_text(scratch)


def test_shutdown_policy_stores_on_sigterm_after_a_first_use_in_another_thread(scratch: Scratch) -> None:
    child = scratch.start("mark", "--tag", "threaded", "--in-thread", env=SHUTDOWN)
    written = child.wait_for("expected")

    result = child.send(signal.SIGTERM)

    assert result.returncode == 128 + signal.SIGTERM, result.describe()
    assert scratch.dump() == written
