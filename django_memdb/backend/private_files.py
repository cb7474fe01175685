"""Files that only this process's user can read, replace or redirect.

Host mode keeps the in-memory tables, in clear, in a shared directory such as
/dev/shm, where every local user can create entries. A file there could be
read by anyone, held locked to stall start-up, planted in advance with rows
that would then be written to storage, or be a symbolic link that makes us
write elsewhere. So everything lives in a directory of this user's own,
checked after creation, and every file is opened without following links and
checked again: whatever somebody else made is refused, never used.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat

from django.core.exceptions import ImproperlyConfigured

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


class UnsafeHostFileError(ImproperlyConfigured):
    """A host-mode directory or file that another user made, can read or can redirect."""


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _refuse(path: str, problem: str, remedy: str) -> UnsafeHostFileError:
    return UnsafeHostFileError(
        f"django_memdb host mode (MEMDB_MODE = 'host') refuses to use {path}: {problem}. {remedy}"
    )


def private_directory(base: str) -> str:
    """This user's directory inside ``base`` (MEMDB_HOST_DIRECTORY)."""
    return os.path.join(os.fspath(base), f"django_memdb-{os.geteuid()}")


def _check_base(base: str) -> None:
    """Nobody but root and this user may rename or replace entries of ``base``."""
    try:
        info = os.stat(base)
    except FileNotFoundError:
        raise _refuse(
            base, "the directory does not exist",
            "Create it, or set MEMDB_HOST_DIRECTORY to an existing directory (a tmpfs such as /dev/shm).",
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(base, "it is not a directory", "Set MEMDB_HOST_DIRECTORY to a directory.")
    if info.st_uid not in (0, os.geteuid()):
        raise _refuse(
            base, f"the directory is owned by {_user(info.st_uid)}, who could replace what is made in it",
            "Set MEMDB_HOST_DIRECTORY to a directory owned by root or by this user.",
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise _refuse(
            base, f"the directory is writable by other users (mode {stat.filemode(info.st_mode)}) and not "
            "sticky, so they could rename or replace what is made in it",
            f"Run 'chmod +t {base}' (as /dev/shm and /tmp are), or set MEMDB_HOST_DIRECTORY elsewhere.",
        )


def ensure_private_directory(base: str) -> str:
    """Create, or check, this user's 0700 directory inside ``base``; its path."""
    _check_base(base)
    path = private_directory(base)
    remedy = (
        "Another user may have made it to read or alter the in-memory tables: find out who, remove it "
        "(with what it holds), and start again; or set MEMDB_HOST_DIRECTORY to a directory of this user's own."
    )
    created = True
    try:
        os.mkdir(path, DIRECTORY_MODE)
    except FileExistsError:
        created = False
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise _refuse(path, _describe(path, error, "a directory"), remedy) from None
    try:
        info = os.fstat(descriptor)
        if info.st_uid != os.geteuid():
            raise _refuse(path, f"it is owned by {_user(info.st_uid)}, not by this process's "
                                f"{_user(os.geteuid())}", remedy)
        if created:
            os.fchmod(descriptor, DIRECTORY_MODE)  # whatever the umask left
        elif stat.S_IMODE(info.st_mode) & 0o077:
            raise _refuse(
                path, f"other users can read or write it (mode {stat.filemode(info.st_mode)})",
                f"If nobody else has written to it, run 'chmod 700 {path}'; otherwise remove it. " + remedy,
            )
    finally:
        os.close(descriptor)
    return path


def _describe(path: str, error: OSError, expected: str) -> str:
    """What is at ``path`` instead of ``expected``, after opening it failed with ``error``."""
    try:
        info = os.lstat(path)
    except OSError:
        return f"it cannot be opened ({error.strerror})"
    if stat.S_ISLNK(info.st_mode):
        return f"it is a symbolic link (to {os.readlink(path)}), made by {_user(info.st_uid)}"
    if info.st_uid != os.geteuid():
        return f"it is owned by {_user(info.st_uid)}, not by this process's {_user(os.geteuid())}"
    if error.errno == errno.ENOTDIR or not stat.S_ISREG(info.st_mode) and expected == "a regular file":
        return f"it is not {expected} (mode {stat.filemode(info.st_mode)})"
    return f"it cannot be opened ({error.strerror})"


def open_private_file(path: str) -> int:
    """A descriptor of ``path`` (created 0600 if missing), a regular file of this user's only."""
    remedy = (
        "Another user may have made it: find out who and remove it; the shared file is rebuilt from "
        "storage (a file of another user is never used)."
    )
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as error:
        raise _refuse(path, _describe(path, error, "a regular file"), remedy) from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(path, f"it is not a regular file (mode {stat.filemode(info.st_mode)})", remedy)
        if info.st_uid != os.geteuid():
            raise _refuse(path, f"it is owned by {_user(info.st_uid)}, not by this process's "
                                f"{_user(os.geteuid())}", remedy)
        if stat.S_IMODE(info.st_mode) != FILE_MODE:
            os.fchmod(descriptor, FILE_MODE)  # whatever the umask left
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def claim_private_file(path: str) -> None:
    """Create ``path`` 0600 before a library (SQLite) opens it, or check the one there."""
    os.close(open_private_file(path))
