"""The first use of the alias runs the project's migrations, whatever they hold.

tests.fk_app has foreign keys in more than one migration: Django runs their
SQL at the end of each migration, so the next one only works on a
connection in autocommit mode.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import TransactionTestCase

from tests.fk_app.models import Author, Book, Shelf
from tests.processes import KILLED, Scratch
from tests.storage_view import assert_persisted

PERSISTENT = (Author, Book, Book.coauthors.through)


@pytest.mark.processes
@pytest.mark.parametrize("mode", ["process", "host"])
def test_first_use_in_a_fresh_process_migrates_and_every_row_comes_back(
    scratch: Scratch, tmp_path: Path, mode: str
) -> None:
    child = scratch.start("fk-app", env={"MEMDB_TEST_MODE": mode, "MEMDB_TEST_HOST_DIRECTORY": str(tmp_path)})
    expected = child.wait_for("expected")
    assert len(expected["fk_app.Book"]) == 2 and len(expected["fk_app.Book_coauthors"]) == 1
    child.send(signal.SIGKILL).check(KILLED)
    assert scratch.dump() == expected  # a new process restores them from storage


@pytest.mark.processes
def test_migrate_command_for_the_alias_in_a_fresh_process(scratch: Scratch) -> None:
    result = scratch.manage("migrate", "--database", "django_memdb")
    assert "fk_app" in result.stdout
    shown = scratch.manage("showmigrations", "--database", "django_memdb", "fk_app").stdout
    assert "[X] 0003_renamed" in shown


class ForeignKeyAppTests(TransactionTestCase):
    databases = {"default", "django_memdb"}

    def test_relations_across_and_inside_the_alias_are_persisted(self) -> None:
        owner = User.objects.create(username="owner")
        author = Author.objects.create(name="author", owner=owner)
        other = Author.objects.create(name="other")
        with transaction.atomic(using="django_memdb"):
            book = Book.objects.create(author=author, editor=other, title="t", pages=10)
            book.coauthors.add(other)
        Shelf.objects.create(label="s", book=book)
        assert Book.objects.get().author.owner == owner
        assert_persisted(*PERSISTENT)
        other.delete()
        book.refresh_from_db()
        assert book.editor is None and list(book.coauthors.all()) == []
        assert_persisted(*PERSISTENT)
        author.delete()  # cascades to the book; the shelf keeps its row
        assert Book.objects.count() == 0 and Shelf.objects.get().book is None
        assert_persisted(*PERSISTENT)
