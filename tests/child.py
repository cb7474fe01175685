"""The child program of the process tests: ``python -m tests.child <action> [options]``.

Each action writes to the persistent models as a project would and reports
on stdout with ``@key <json>`` lines (``@expected`` is the dump of what it
committed). ``--kill-at`` makes the process SIGKILL itself at a chosen point
of the persistence engine, by wrapping its functions here, never in the
package. The settings module and the database come from the environment
(see tests/processes.py).
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import io
import json
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

import django

MEMORY = "django_memdb"
POINTS = (
    "commit", "journal", "journal-committed", "first-snapshot", "compaction", "online-slices", "online-write",
)


def emit(key: str, value: Any = None) -> None:
    print(f"@{key} {json.dumps(value, sort_keys=True)}", flush=True)


# What a fresh process restores: every row of every persistent model


def persistent_models() -> list[Any]:
    """Chosen from the test app by tag, independently of django_memdb.registry."""
    from django.apps import apps

    from django_memdb.mixins import PeristentInMemoryDB

    found = []
    for model in [
        *apps.get_app_config("tests").get_models(include_auto_created=True),
        *apps.get_app_config("fk_app").get_models(include_auto_created=True),
    ]:
        owner = model._meta.auto_created
        tagged = owner if isinstance(owner, type) else model
        if issubclass(tagged, PeristentInMemoryDB):
            found.append(model)
    return sorted(found, key=lambda model: model._meta.label)


def _value(value: Any) -> Any:
    """A JSON value that keeps the Python type and full precision of a field value."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (dict, list)):
        return {"json": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(value).hex()}
    if isinstance(value, datetime.timedelta):
        return {"timedelta": [value.days, value.seconds, value.microseconds]}
    return {type(value).__name__: str(value)}


def dump() -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Rows of every persistent model by pk, and the error of each that cannot be read."""
    from django_memdb.exceptions import MemDBError

    rows: dict[str, list[dict[str, Any]]] = {}
    errors: dict[str, str] = {}
    for model in persistent_models():
        fields = model._meta.concrete_fields
        try:
            rows[model._meta.label] = [
                {field.attname: _value(field.value_from_object(obj)) for field in fields}
                for obj in model._default_manager.order_by("pk")
            ]
        except MemDBError as exc:
            errors[model._meta.label] = f"{type(exc).__name__}: {exc}"
    return rows, errors


def expected() -> None:
    rows, errors = dump()
    assert not errors, errors
    emit("expected", rows)


# Actions


def action_dump(options: argparse.Namespace) -> None:
    rows, errors = dump()
    emit("dump", rows)
    emit("errors", errors)


def action_write_paths(options: argparse.Namespace) -> None:
    """Every write path of SPEC section 3, on persistent models."""
    from django.db import connections
    from django.db.models import F

    from tests.models import (
        Child,
        Counter,
        Keyed,
        Note,
        Parent,
        Persistent,
        Tag,
        Tagged,
        TestModelPersistent,
        Uuided,
    )

    Persistent(text="saved").save()
    created = Persistent.objects.create(text="created")
    created.text = "created, then saved"
    created.save()
    Persistent.objects.create(text="deleted").delete()
    Persistent.objects.bulk_create([Persistent(text=f"bulk {i}") for i in range(20)])
    some = list(Persistent.objects.filter(text__startswith="bulk ").order_by("id")[:8])
    for obj in some:
        obj.text = f"bulk updated {obj.id}"
    Persistent.objects.bulk_update(some, ["text"])
    untouched = Persistent.objects.filter(text__startswith="bulk ").exclude(text__startswith="bulk updated")
    untouched.update(text="queryset updated")
    Persistent.objects.filter(text="queryset updated", id__gt=created.id + 15).delete()

    Keyed.objects.get_or_create(key="a", defaults={"value": 1})
    Keyed.objects.get_or_create(key="a", defaults={"value": 99})
    Keyed.objects.update_or_create(key="b", defaults={"value": 2})
    Keyed.objects.update_or_create(key="a", defaults={"value": 3})
    Keyed.objects.get_or_create(key="gone", defaults={"value": 4})
    Keyed.objects.filter(key="gone").delete()
    Keyed.objects.filter(key="b").update(key="c")  # a primary key changed in place
    Uuided.objects.create(label="first")
    Uuided.objects.create(id=uuid.UUID("00000000-0000-4000-8000-000000000001"), label="fixed")

    kept, removed = Parent.objects.create(name="kept"), Parent.objects.create(name="removed")
    for parent in (kept, removed):
        Child.objects.bulk_create([Child(parent=parent, name=f"{parent.name} child {i}") for i in range(3)])
    removed.delete()  # cascades to its children
    Parent.objects.create(name="removed by queryset").children.create(name="orphan to be")
    Parent.objects.filter(name="removed by queryset").delete()

    one, two, three = (Tag.objects.create(name=name) for name in ("one", "two", "three"))
    first, second = Tagged.objects.create(name="first"), Tagged.objects.create(name="second")
    first.tags.add(one, two, three)
    first.tags.remove(two)
    second.tags.add(three)
    second.tags.set([one])
    Tagged.objects.create(name="cleared").tags.add(one, two)
    Tagged.objects.get(name="cleared").tags.clear()

    with connections[MEMORY].cursor() as cursor:
        cursor.execute("INSERT INTO tests_other (number) VALUES (%s), (%s), (%s)", [7, 8, 100])
        cursor.execute("UPDATE tests_other SET number = number + 1 WHERE number < %s", [100])
        cursor.execute("DELETE FROM tests_other WHERE number = %s", [100])

    Note.objects.create(text="no plain row", plain_id=None)
    counter = Counter.objects.create(name="hits", group=1)
    Counter.objects.filter(pk=counter.pk).update(value=F("value") + 5)
    Counter.objects.create(name="misses", group=2)
    TestModelPersistent.objects.create(text="0.0.6 model")
    _rich_rows()
    expected()


def _rich_rows() -> None:
    from tests.models import Rich

    utc = datetime.timezone.utc
    Rich.objects.create(
        char="ç ☃ ünïcode", text='line\nbreak "quoted" \\ back\ttab', integer=-(2**31), big=-(2**63),
        floating=0.1, flag=True, maybe=None,
        when=datetime.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=utc),
        day=datetime.date(2024, 2, 29), clock=datetime.time(0, 0, 0, 1),
        amount=decimal.Decimal("-12345678.9012"),
        token=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        payload={"a": [1, 2.5, None, True, "ü"], "nested": {"empty": {}, "list": []}},
        blob=bytes(range(256)), duration=datetime.timedelta(days=-1, microseconds=1), address="2001:db8::1",
    )
    Rich.objects.create()
    Rich.objects.create(
        char="x" * 50, integer=2**31 - 1, big=2**63 - 1, floating=1e300, maybe=False,
        when=datetime.datetime(1970, 1, 1, tzinfo=utc), day=datetime.date(1999, 12, 31),
        clock=datetime.time(23, 59, 59, 999999), amount=decimal.Decimal("0.0001"), token=uuid.uuid4(),
        payload="a JSON string", blob=b"",
        duration=datetime.timedelta(days=3, seconds=7, microseconds=999999),
        address="192.0.2.1",
    )
    changed = Rich.objects.order_by("pk").first()
    assert changed is not None
    changed.amount = decimal.Decimal("12.3400")
    changed.when = changed.when + datetime.timedelta(microseconds=1)
    changed.save(update_fields=["amount", "when"])


def action_rich(options: argparse.Namespace) -> None:
    _rich_rows()
    expected()


def action_fk_app(options: argparse.Namespace) -> None:
    """The models of tests.fk_app, whose migrations have foreign keys, first used by this process."""
    from django.contrib.auth.models import User
    from django.db.models import F

    from tests.fk_app.models import Author, Book, Shelf

    owner = User.objects.create(username=f"owner {options.tag}")
    author = Author.objects.create(name="author", owner=owner)
    editor = Author.objects.create(name="editor")
    kept = Author.objects.create(name="coauthor")
    book = Book.objects.create(author=author, editor=editor, title="first", pages=120)
    book.coauthors.add(editor, kept)
    Book.objects.create(author=kept, title="second")
    Shelf.objects.create(label="shelf", book=book)
    Book.objects.filter(pk=book.pk).update(pages=F("pages") + 1)
    editor.delete()  # SET_NULL on book.editor, and its coauthor row goes
    assert Book.objects.get(pk=book.pk).author.owner == owner  # across the two databases
    expected()


def action_seeded(options: argparse.Namespace) -> None:
    """What the data migrations seeded, as this process first sees it; ``--tag 1`` then edits the seeded rows."""
    from django.apps import apps

    from tests.fk_app.models import Genre
    from tests.mixed_app.models import Colour, Palette

    emit("genres", list(Genre.objects.order_by("pk").values_list("name", flat=True)))
    emit("colours", list(Colour.objects.order_by("pk").values_list("name", flat=True)))
    emit("palettes", list(Palette.objects.order_by("pk").values_list("name", flat=True)))
    grades = apps.get_model("seed_app", "Grade") if apps.is_installed("tests.seed_app") else None
    if grades is not None:  # with tests.settings_seeded
        emit("grades", list(grades.objects.order_by("pk").values_list("pk", "name")))
    if options.tag == "1":
        Genre.objects.create(name="not persisted")
        if grades is not None:
            grades.objects.filter(name="c").update(name="c, renamed")
            grades.objects.create(name="d")
    elif options.tag == "delete" and grades is not None:
        grades.objects.filter(name="a").delete()


def action_stored_grades(options: argparse.Namespace) -> None:
    """What storage holds for tests.seed_app's Grade, read without starting the in-memory database."""
    from django.apps import apps

    from tests.storage_view import stored

    state = stored(apps.get_model("seed_app", "Grade"))
    emit("stored", sorted([pk, fields["name"]] for pk, fields in state.items()))


def action_rollback(options: argparse.Namespace) -> None:
    """Rolled-back writes next to committed ones: whole transactions, savepoints, manual."""
    from django.db import IntegrityError, transaction

    from tests.models import Keyed, Other, Parent, Persistent

    class Abort(Exception):
        pass

    Persistent.objects.create(text="committed")
    Other.objects.create(number=1)
    Keyed.objects.create(key="unique", value=1)
    try:
        with transaction.atomic(using=MEMORY):
            Persistent.objects.create(text="rolled back transaction")
            Other.objects.update(number=666)
            Parent.objects.create(name="rolled back transaction")
            raise Abort
    except Abort:
        pass
    with transaction.atomic(using=MEMORY):
        Persistent.objects.create(text="kept around a savepoint")
        try:
            with transaction.atomic(using=MEMORY):
                Persistent.objects.create(text="rolled back savepoint")
                Other.objects.update(number=667)
                raise Abort
        except Abort:
            pass
    try:
        with transaction.atomic(using=MEMORY):
            Persistent.objects.create(text="rolled back by an error")
            Keyed.objects.create(key="unique", value=668)
    except IntegrityError:
        pass
    transaction.set_autocommit(False, using=MEMORY)
    try:
        Persistent.objects.create(text="rolled back manually")
        transaction.rollback(using=MEMORY)
    finally:
        transaction.set_autocommit(True, using=MEMORY)
    expected()


def action_fill(options: argparse.Namespace) -> None:
    """Two tables, each with a snapshot and journal entries."""
    from tests.models import Other, Persistent

    for i in range(5):
        Persistent.objects.create(text="compressible " * 40 + str(i))
    Persistent.objects.filter(text__endswith="0").update(text="changed")
    for i in range(3):
        Other.objects.create(number=i)
    expected()


def action_odd_name(options: argparse.Namespace) -> None:
    """Writes to a table whose name holds ``%``, ``'`` and ``"``; then compacts it."""
    from django_memdb import lifecycle, spool
    from tests.models import OddName

    rows, errors = dump()
    assert not errors, errors
    emit("before", rows)
    n = int(options.tag)
    OddName.objects.create(text=f"100% it's \"{n}\"")
    OddName.objects.bulk_create([OddName(text=f"bulk {n} {i}%s") for i in range(3)])
    OddName.objects.filter(text=f"bulk {n} 0%s").update(text=f"updated {n}")
    OddName.objects.filter(text=f"bulk {n} 1%s").delete()
    expected()
    if n == 1:
        spool.compact(lifecycle.current_database())


def action_rewrite(options: argparse.Namespace) -> None:
    """``manage.py memdb_spool --rewrite`` in this process, with its processors."""
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    try:
        call_command("memdb_spool", rewrite=True, stdout=out)
    except CommandError as exc:
        emit("refused", str(exc))
    emit("output", out.getvalue())


def action_touch_other(options: argparse.Namespace) -> None:
    from tests.models import Other

    Other.objects.create(number=99)
    Other.objects.filter(number=0).delete()
    Other.objects.filter(number=1).update(number=11)
    expected()


def action_empty_persistent(options: argparse.Namespace) -> None:
    from tests.models import Persistent

    Persistent.objects.all().delete()
    expected()


def action_append(options: argparse.Namespace) -> None:
    """One more restart: report what was restored, then add, change and delete rows."""
    from tests.models import Other, Persistent, Tag, Tagged

    rows, errors = dump()
    assert not errors, errors
    emit("before", rows)
    n = int(options.tag)
    Persistent.objects.create(text=f"restart {n}")
    Persistent.objects.filter(text=f"restart {n - 1}").update(text=f"restart {n - 1}, seen by {n}")
    Other.objects.bulk_create([Other(number=n * 10 + i) for i in range(3)])
    Other.objects.filter(number=(n - 1) * 10).delete()
    Tagged.objects.create(name=f"restart {n}").tags.add(Tag.objects.create(name=f"tag {n}"))
    expected()


def action_churn(options: argparse.Namespace) -> None:
    """Many small commits, so that the journal is compacted more than once."""
    from django.db.models import F

    from tests.models import Other, Persistent

    for i in range(30):
        Persistent.objects.create(text=f"row {i}")
        Other.objects.create(number=i)
    for obj in Persistent.objects.filter(text__in=[f"row {i}" for i in range(10)]):
        obj.text += " updated"
        obj.save()
    Persistent.objects.filter(text__in=[f"row {i}" for i in range(25, 30)]).delete()
    Other.objects.filter(number__lt=5).update(number=F("number") + 1000)
    expected()


def action_blocked(options: argparse.Namespace) -> None:
    """A read first thing in the process, then a get, then a write, then status: what each did."""
    from tests.models import Other, Persistent

    attempts: dict[str, Callable[[], Any]] = {
        "list": lambda: list(Persistent.objects.all()),
        "get": lambda: Persistent.objects.get(pk=1),
        "count": lambda: Persistent.objects.count(),
        "create": lambda: Persistent.objects.create(text="written over a failed restore"),
        "other": lambda: sorted(Other.objects.values_list("number", flat=True)),
    }
    outcomes = {}
    for name, attempt in attempts.items():
        try:
            value = attempt()
        except Exception as exc:
            outcomes[name] = {"raised": type(exc).__name__, "message": str(exc)}
        else:
            outcomes[name] = {"returned": value if name == "other" else repr(value)}
    emit("outcomes", outcomes)
    action_status(options)


def action_status(options: argparse.Namespace) -> None:
    """``memdb_status --json`` and ``memdb_restore --dry-run`` of this process, and what its tables hold."""
    from django.core.management import CommandError, call_command

    output = io.StringIO()
    call_command("memdb_status", "--json", stdout=output)
    emit("status", json.loads(output.getvalue()))
    try:
        call_command("memdb_restore", "--dry-run", stdout=io.StringIO())
    except CommandError as exc:  # how the command says that a table would fail
        emit("dry-run-error", str(exc))
    else:
        emit("dry-run-error", None)


def action_compact(options: argparse.Namespace) -> None:
    """Report the restored rows, then compact every persistent table."""
    from django_memdb import lifecycle, spool

    expected()
    spool.compact(lifecycle.current_database())


def action_mark(options: argparse.Namespace) -> None:
    from tests.models import Other, Persistent

    Persistent.objects.create(text=f"durable {options.tag}")
    Other.objects.create(number=4242)
    expected()


def action_threads(options: argparse.Namespace) -> None:
    """Threads that each create rows and move a row of their own forward, reporting every
    write once its call returned (``@acked``): under the ``commit`` policy, it is stored.

    ``--rounds`` writes per thread (0: until the process is killed).
    """
    from django.db import connections

    from tests.models import Persistent

    printing = threading.Lock()
    failures: list[BaseException] = []

    def acked(pk: int, text: str) -> None:
        line = f"@acked {json.dumps({'pk': pk, 'text': text})}\n"
        with printing:
            sys.stdout.write(line)
            sys.stdout.flush()

    def writer(number: int) -> None:
        name = f"{options.tag} t{number}"
        try:
            head = Persistent.objects.create(text=f"{name} last -1")
            acked(head.pk, head.text)
            round_ = 0
            while not options.rounds or round_ < options.rounds:
                row = Persistent.objects.create(text=f"{name} row {round_}")
                acked(row.pk, row.text)
                Persistent.objects.filter(pk=head.pk).update(text=f"{name} last {round_}")
                acked(head.pk, f"{name} last {round_}")
                round_ += 1
        except BaseException as exc:
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(options.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def action_crash(options: argparse.Namespace) -> None:
    """Committed rows, then one multi-table transaction during which the process dies."""
    from django.conf import settings
    from django.db import transaction
    from django.db.models import F

    from tests.models import Child, Keyed, Other, Parent, Persistent, Tag

    first = Persistent.objects.create(text="committed 1")
    Persistent.objects.create(text="committed 2")
    Other.objects.create(number=1)
    Other.objects.create(number=2)
    parent = Parent.objects.create(name="committed")
    Child.objects.create(parent=parent, name="committed")
    Tag.objects.create(name="committed")
    rows, errors = dump()
    assert not errors, errors
    emit("before", rows)
    if options.kill_at == "compaction":
        # Any journal entry now makes its table due for compaction.
        settings.MEMDB_COMPACT_MIN_ROWS = 0
        settings.MEMDB_COMPACT_RATIO = 0.0
    arm(options.kill_at)
    with transaction.atomic(using=MEMORY):
        Persistent.objects.create(text="interrupted")
        first.text = "interrupted"
        first.save()
        Other.objects.filter(number=1).delete()
        Other.objects.update(number=F("number") + 100)
        Parent.objects.create(name="interrupted").children.create(name="interrupted")
        parent.delete()
        Tag.objects.all().delete()  # the table becomes empty
        if options.kill_at == "first-snapshot":
            Keyed.objects.create(key="interrupted", value=1)  # a table without a snapshot yet
        rows, errors = dump()
        emit("inside", rows)
    emit("survived")


# Crash injection


def action_compact_online(options: argparse.Namespace) -> None:
    """A table large enough to be compacted in a thread, changed between the slices that thread reads.

    The changes run at the compaction thread's pauses, so they fall between two
    slices: rows already read and rows not yet read are updated and deleted, a
    read row is deleted and inserted again with its key, new rows are added.
    ``--kill-at online-slices`` dies at the pause after the changes, before
    the snapshot is written; ``online-write`` once it is written, before its
    transaction commits. Either reports the rows expected first. ``--tag
    empty``: the table is emptied at the first pause instead.
    """
    from django.conf import settings
    from django.db import transaction

    from django_memdb import compaction, pacing, storage
    from tests.models import Persistent

    rows = 20_000
    Persistent.objects.bulk_create([Persistent(text=f"row {n}") for n in range(1, rows + 1)])
    first = Persistent.objects.order_by("pk").first()
    assert first is not None
    base = first.pk - 1  # the keys are base + 1 .. base + rows
    changes = iter([
        lambda: Persistent.objects.filter(pk=base + 1).update(text="read, then updated"),
        lambda: Persistent.objects.filter(pk=base + rows).update(text="updated before it was read"),
        lambda: Persistent.objects.filter(pk=base + 2).delete(),
        lambda: Persistent.objects.filter(pk__in=[base + rows - 1, base + rows - 2]).delete(),
        lambda: _moved(Persistent, base + 3),
        lambda: Persistent.objects.create(text="added while compacting"),
        lambda: Persistent.objects.filter(pk=base + rows // 2).update(text="updated in the middle"),
    ])
    if options.tag == "empty":
        changes = iter([lambda: Persistent.objects.all().delete()])
    done: list[int] = []
    pause_after = pacing.pause_after

    def pause(seconds: float) -> None:
        change = next(changes, None)
        if change is not None:
            change()
            done.append(1)
        elif options.kill_at == "online-slices":
            expected()
            die("online-slices")
        pause_after(seconds)

    compaction.pacing.pause_after = pause  # type: ignore[attr-defined]
    if options.kill_at == "online-write":
        write = compaction._write

        def written(database: Any, model: Any, spool: Any, *args: Any) -> bool:
            with transaction.atomic(using=spool.alias):
                result = write(database, model, spool, *args)
                expected()
                die("online-write", model=model.__name__, written=result)
            return result

        compaction._write = written
    # Any journal entry now makes the table due; it is too large to be compacted under the lock.
    settings.MEMDB_COMPACT_MIN_ROWS = 0
    settings.MEMDB_COMPACT_RATIO = 0.0
    assert rows > compaction.SMALL_TABLE
    Persistent.objects.filter(pk=base + rows // 3).update(text="journaled, then compacted")
    assert compaction.wait_idle(120), "the compaction did not end"
    emit("changes", len(done))
    emit("state", vars(storage.table_state(_database(), Persistent)))
    expected()


def _moved(model: Any, pk: int) -> None:
    """A row deleted and inserted again with the same key: it may move in rowid order."""
    model.objects.filter(pk=pk).delete()
    model.objects.create(pk=pk, text="deleted, then inserted again")


def _database() -> Any:
    from django_memdb import lifecycle

    return lifecycle.current_database()


def die(point: str, **details: Any) -> None:
    emit("killed", {"point": point, **details})
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str | None) -> None:
    """Wrap a function of the persistence engine so that this process dies in it."""
    from django.db import transaction

    from django_memdb import spool, storage

    if point == "commit":
        changes_committed = spool.changes_committed

        def before_flush(*args: Any, **kwargs: Any) -> None:
            die(point)  # committed in memory, nothing written to storage yet
            changes_committed(*args, **kwargs)

        spool.changes_committed = before_flush
    elif point in ("journal", "journal-committed"):
        # The append of the full path (with a claim), and of the fast path (a table emptied
        # by the transaction is removed in the fast path's transaction too).
        for name in ("append_journal", "append_journal_held"):
            append = getattr(storage, name)

            def journal(model: Any, items: Any, spool_connection: Any, *held: Any, append: Any = append) -> bool:
                appended = bool(append(model, items, spool_connection, *held))
                if appended and point == "journal":
                    die(point, model=model.__name__)  # the INSERT ran, the transaction is open
                elif appended:
                    transaction.on_commit(lambda: die(point, model=model.__name__), using=spool_connection.alias)
                return appended

            setattr(storage, name, journal)
    elif point in ("first-snapshot", "compaction"):
        write_snapshot = storage.write_snapshot

        def snapshot(database: Any, model: Any, codec: Any, using: str) -> int:
            # One more transaction level: the snapshot is written, not committed.
            with transaction.atomic(using=using):
                count = write_snapshot(database, model, codec, using)
                die(point, model=model.__name__)
            return count

        storage.write_snapshot = snapshot


ACTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    name[len("action_"):].replace("_", "-"): function
    for name, function in list(globals().items())
    if name.startswith("action_")
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.child")
    parser.add_argument("action", choices=sorted(ACTIONS))
    parser.add_argument("--wait", action="store_true", help="report @ready, then wait for stdin to close")
    parser.add_argument(
        "--zlib", action="store_true", help="connect the zlib processors of tests.processors_zlib"
    )
    parser.add_argument(
        "--zlib-either", action="store_true",
        help="as --zlib, but the store_load processor also reads data stored without compression",
    )
    parser.add_argument(
        "--zlib-save-only", action="store_true", help="as --zlib, but with no store_load processor"
    )
    parser.add_argument("--kill-at", choices=POINTS, help="SIGKILL this process at that point (action crash)")
    parser.add_argument("--compact-min-rows", type=int, help="MEMDB_COMPACT_MIN_ROWS for this process")
    parser.add_argument("--tag", default="0")
    parser.add_argument("--threads", type=int, default=8, help="threads of the action threads")
    parser.add_argument("--rounds", type=int, default=0, help="writes per thread of the action threads (0: no end)")
    parser.add_argument(
        "--in-thread", action="store_true", help="run the action in another thread, as a threaded server does"
    )
    options = parser.parse_args(argv)
    # As in a terminal, whatever the parent ignored: Ctrl-C interrupts, SIGTERM ends.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    django.setup()
    if options.compact_min_rows is not None:
        from django.conf import settings

        settings.MEMDB_COMPACT_MIN_ROWS = options.compact_min_rows
    if options.zlib or options.zlib_either or options.zlib_save_only:
        from tests import processors_zlib

        processors_zlib.connect(
            load="either" if options.zlib_either else "none" if options.zlib_save_only else "compressed"
        )
    if options.in_thread:
        failures: list[BaseException] = []

        def run() -> None:
            try:
                ACTIONS[options.action](options)
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if failures:
            raise failures[0]
    else:
        ACTIONS[options.action](options)
    if options.wait:
        emit("ready")
        sys.stdin.read()
    emit("done")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
