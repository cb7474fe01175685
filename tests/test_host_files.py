"""Host mode's shared files against another local user, and their names.

The hostile cases run a real second user (``memdb_other``, created when
missing) and real worker processes of the test project in host mode, in a
directory that, like /dev/shm, every user may write to (mode 1777).
"""

from __future__ import annotations

import enum
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from django_memdb.backend import host
from django_memdb.backend.private_files import UnsafeHostFileError
from tests.processes import REPO, Scratch
from tests.servers import Worker

OTHER = "memdb_other"
SUFFIXES = ("", "-wal", "-shm", ".alive", ".boot", ".spool")
processes = pytest.mark.processes


@pytest.fixture(scope="session")
def other_user() -> pwd.struct_passwd:
    """A second local user, created if missing (needs root: the suite runs as root in CI)."""

    def unavailable(reason: str) -> None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)

    if os.geteuid() != 0:
        unavailable("the tests against another local user run as root (to act as that user)")
    try:
        return pwd.getpwnam(OTHER)
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        unavailable(f"no user {OTHER!r} and no useradd to create it")
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER],
        check=True, capture_output=True,
    )
    return pwd.getpwnam(OTHER)


def as_other(user: pwd.struct_passwd, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` as the other user (not root, no groups of ours)."""
    return subprocess.run(
        list(command), user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
        capture_output=True, text=True, check=False,
    )


@pytest.fixture
def shared_base() -> Iterator[Path]:
    """A directory like /dev/shm: on tmpfs, every user may create entries, sticky."""
    base = Path(tempfile.mkdtemp(prefix="memdb-shared-", dir=host.default_directory()))
    base.chmod(0o1777)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def host_mode(base: Path) -> dict[str, str]:
    return {"MEMDB_TEST_MODE": "host", "MEMDB_TEST_HOST_DIRECTORY": str(base)}


def private_of(base: Path) -> Path:
    return base / f"django_memdb-{os.geteuid()}"


@processes
def test_files_are_private_to_their_user_whatever_the_umask(
    scratch: Scratch, shared_base: Path, other_user: pwd.struct_passwd,
) -> None:
    umask = os.umask(0)  # the worker inherits it
    try:
        worker = Worker(scratch, "owner", **host_mode(shared_base))
    finally:
        os.umask(umask)
    worker.ask("write secret")
    private = private_of(shared_base)
    info = private.lstat()
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert list(shared_base.iterdir()) == [private]  # nothing outside it
    files = {path.name: path.lstat() for path in private.iterdir()}
    (main,) = (name for name in files if name.endswith(".sqlite3"))
    assert {main + suffix for suffix in SUFFIXES} <= set(files)
    for name, info in files.items():
        assert stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid(), name
        assert stat.S_IMODE(info.st_mode) == 0o600, f"{name}: {stat.filemode(info.st_mode)}"

    for command in (["cat", str(private / main)], ["ls", str(private)], ["touch", str(private / "planted")]):
        attempt = as_other(other_user, *command)
        assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, (command, attempt)
    assert worker.ask("texts") == ["secret"]
    worker.child.finish().check()


@processes
@pytest.mark.parametrize("planted", ["directory", "symlink", "file"])
def test_a_private_directory_planted_by_another_user_is_refused(
    scratch: Scratch, shared_base: Path, other_user: pwd.struct_passwd, planted: str,
) -> None:
    private = private_of(shared_base)
    decoy = shared_base / "decoy"
    steps = {
        "directory": [["mkdir", "-m", "777", str(private)]],
        "symlink": [["mkdir", "-m", "777", str(decoy)], ["ln", "-s", str(decoy), str(private)]],
        "file": [["touch", str(private)]],
    }[planted]
    for step in steps:
        done = as_other(other_user, *step)
        assert done.returncode == 0, done
    worker = Worker(scratch, "victim", **host_mode(shared_base))
    refusal = worker.ask("write mine", "error")
    assert refusal.startswith("UnsafeHostFileError: ") and f"refuses to use {private}: " in refusal, refusal
    assert {"directory": "owned by", "symlink": "symbolic link", "file": "owned by"}[planted] in refusal
    assert OTHER in refusal and "MEMDB_HOST_DIRECTORY" in refusal
    worker.child.finish().check()
    # Nothing was written through what the other user made, nor to storage.
    written = private if planted == "directory" else decoy if planted == "symlink" else None
    assert written is None or list(written.iterdir()) == []
    assert private.lstat().st_uid == other_user.pw_uid
    assert scratch.stored() == []


@processes
@pytest.mark.parametrize("planted", ["symlink", "file"])
def test_a_file_planted_in_the_private_directory_is_refused(
    scratch: Scratch, shared_base: Path, other_user: pwd.struct_passwd, planted: str,
) -> None:
    first = Worker(scratch, "first", **host_mode(shared_base))
    first.ask("write kept")
    first.child.finish().check()
    private = private_of(shared_base)
    (main,) = private.glob("*.sqlite3")
    victim = shared_base / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    refused: list[Worker] = []
    for suffix in SUFFIXES:
        target = Path(f"{main}{suffix}")
        private.chmod(0o777)  # as if the other user could write there
        try:
            command = 'rm -f "$1" && ln -s "$2" "$1"' if planted == "symlink" else 'rm -f "$1" && echo junk > "$1"'
            done = as_other(other_user, "sh", "-c", command, "plant", str(target), str(victim))
            assert done.returncode == 0, done
        finally:
            private.chmod(0o700)
        worker = Worker(scratch, f"victim{suffix}", **host_mode(shared_base))
        refused.append(worker)  # kept running: what it refused must not hold the others' locks
        refusal = worker.ask("write lost", "error")
        assert f"refuses to use {target}: " in refusal, (suffix, refusal)
        assert ("symbolic link" if planted == "symlink" else f"owned by uid {other_user.pw_uid} ({OTHER})") in refusal
        assert victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
        assert target.lstat().st_uid == other_user.pw_uid  # refused, neither used nor replaced
        target.unlink()
    # Once the planted files are gone, nothing stored was lost.
    last = Worker(scratch, "last", **host_mode(shared_base))
    assert last.ask("texts") == ["kept"]
    last.child.finish().check()
    for worker in refused:
        worker.child.finish().check()


def test_an_unsafe_configured_directory_is_refused(tmp_path: Path, other_user: pwd.struct_passwd) -> None:
    storage = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3")}

    def refusal(base: Path) -> str:
        with pytest.raises(UnsafeHostFileError) as raised:
            host.HostFiles(host.path_for("django_memdb", storage, str(base)))
        return str(raised.value)

    assert "does not exist" in refusal(tmp_path / "missing")
    writable = tmp_path / "writable"
    writable.mkdir()
    writable.chmod(0o777)  # not sticky: anyone could rename our directory away
    message = refusal(writable)
    assert f"refuses to use {writable}: " in message and "chmod +t" in message
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, other_user.pw_uid, other_user.pw_gid)
    message = refusal(theirs)
    assert f"owned by uid {other_user.pw_uid} ({OTHER})" in message
    assert not private_of(writable).exists() and not private_of(theirs).exists()

    readable = tmp_path / "readable"
    private_of(readable).mkdir(parents=True)
    private_of(readable).chmod(0o755)  # ours, but others may look in
    message = refusal(readable)
    assert f"refuses to use {private_of(readable)}: " in message and f"chmod 700 {private_of(readable)}" in message


# The file's name: one per storage database, the same in every process.

BASE = "/dev/shm"
SQLITE = "django.db.backends.sqlite3"
POSTGRESQL = {
    "ENGINE": "django.db.backends.postgresql", "NAME": "app", "HOST": "db", "PORT": "5432", "USER": "app",
    "OPTIONS": {},
}


def test_relative_sqlite_names_of_two_projects_get_two_files(tmp_path: Path, monkeypatch: Any) -> None:
    for project in ("one", "two"):
        (tmp_path / project).mkdir()
    relative = {"ENGINE": SQLITE, "NAME": "db.sqlite3"}
    monkeypatch.chdir(tmp_path / "one")
    one = host.path_for("django_memdb", relative, BASE)
    monkeypatch.chdir(tmp_path / "two")
    two = host.path_for("django_memdb", relative, BASE)
    assert one != two
    # The same database however it is named.
    (tmp_path / "link").symlink_to(tmp_path / "two")
    for name in (str(tmp_path / "two" / "db.sqlite3"), tmp_path / "two" / "db.sqlite3", tmp_path / "link/db.sqlite3"):
        assert host.path_for("django_memdb", {"ENGINE": SQLITE, "NAME": name}, BASE) == two
    assert os.path.dirname(two) == f"{BASE}/django_memdb-{os.geteuid()}"


def test_user_and_options_tell_storage_databases_apart() -> None:
    variants = [
        POSTGRESQL,
        {**POSTGRESQL, "USER": "other"},
        {**POSTGRESQL, "OPTIONS": {"options": "-c search_path=one"}},
        {**POSTGRESQL, "OPTIONS": {"options": "-c search_path=two"}},
        {**POSTGRESQL, "PORT": "5433"},
    ]
    assert len({host.path_for("django_memdb", variant, BASE) for variant in variants}) == len(variants)
    # Irrelevant settings and the order of OPTIONS do not matter.
    ordered = {**POSTGRESQL, "OPTIONS": {"a": 1, "b": 2}}
    reordered = {**POSTGRESQL, "OPTIONS": {"b": 2, "a": 1}, "CONN_MAX_AGE": 60, "PASSWORD": "new"}
    assert host.path_for("django_memdb", ordered, BASE) == host.path_for("django_memdb", reordered, BASE)


class Level(enum.Enum):
    SERIALIZABLE = 3


@processes
def test_options_that_are_objects_name_the_same_file_in_every_process() -> None:
    # Values whose repr holds a memory address must not give each process its own file.
    code = (
        "import signal, sys; from django_memdb.backend import host; "
        "print(host.path_for('django_memdb', {**eval(sys.argv[1]), 'OPTIONS': "
        "{'configure': signal.getsignal, 'signal': signal.SIGTERM, 'object': object()}}, '/dev/shm'))"
    )
    settings = {key: value for key, value in POSTGRESQL.items() if key != "OPTIONS"}
    paths = {
        subprocess.run(
            [sys.executable, "-c", code, repr(settings)], cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout
        for _ in range(2)
    }
    here = host.path_for(
        "django_memdb",
        {**settings, "OPTIONS": {"configure": signal.getsignal, "signal": signal.SIGTERM, "object": object()}},
        "/dev/shm",
    )
    assert paths == {here + "\n"}
    assert host.path_for("django_memdb", {**POSTGRESQL, "OPTIONS": {"level": Level.SERIALIZABLE}}, BASE) != (
        host.path_for("django_memdb", POSTGRESQL, BASE)
    )
