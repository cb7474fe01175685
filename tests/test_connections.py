"""The in-memory database lives as long as the process, whatever happens to connections."""

from __future__ import annotations

import copy as copy_module
import io
import json
import threading
from typing import Any

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, connections, transaction
from django.test import RequestFactory

from django_memdb.models import PersistentStorage
from tests.models import Ephemeral, Persistent

pytestmark = pytest.mark.django_db(databases=["default", "django_memdb"], transaction=True)


def test_alias_is_recognised_as_in_memory() -> None:
    assert connections["django_memdb"].is_in_memory_db()


def test_survives_connection_close() -> None:
    Ephemeral.objects.create(text="kept")
    connections["django_memdb"].close()
    assert connections["django_memdb"].connection is None
    assert list(Ephemeral.objects.values_list("text", flat=True)) == ["kept"]


def test_closing_a_wrapper_that_never_connected() -> None:
    """Django's own suite closes copies of a wrapper (``_close()``) that never opened a connection."""
    Ephemeral.objects.create(text="kept")
    copy = connections["django_memdb"].copy()
    copy._close()
    copy.close()
    assert copy.connection is None
    assert Ephemeral.objects.count() == 1


def test_a_wrapper_can_be_copied_with_the_copy_module() -> None:
    """Django's own suite copies wrappers with copy.copy(), which rebuilds them without arguments."""
    wrapper = connections["django_memdb"]
    duplicate = copy_module.copy(wrapper)
    assert type(duplicate) is type(wrapper)
    assert duplicate.settings_dict == wrapper.settings_dict


def test_survives_close_all_and_close_old_connections() -> None:
    Ephemeral.objects.create(text="kept")
    connections.close_all()
    close_old_connections()
    assert Ephemeral.objects.count() == 1


def _wsgi_request(method: str, data: str = "") -> dict[str, Any]:
    """A request through Django's WSGI handler, which closes connections at its end."""
    environ = RequestFactory()._base_environ(
        PATH_INFO="/items/",
        REQUEST_METHOD=method,
        CONTENT_TYPE="application/x-www-form-urlencoded",
        CONTENT_LENGTH=str(len(data)),
        **{"wsgi.input": io.BytesIO(data.encode())},
    )
    response = WSGIHandler()(environ, lambda status, headers: None)
    body = b"".join(response)
    response.close()  # sends request_finished: close_old_connections runs
    return json.loads(body)


def test_survives_request_end_with_conn_max_age_zero() -> None:
    assert connections["django_memdb"].settings_dict["CONN_MAX_AGE"] == 0
    _wsgi_request("POST", "text=one")
    assert connections["django_memdb"].connection is None  # the request closed it
    assert _wsgi_request("POST", "text=two")["texts"] == ["one", "two"]
    assert Persistent.objects.count() == 2


def test_threads_see_the_same_tables() -> None:
    Ephemeral.objects.create(text="main")
    seen: list[list[str]] = []

    def read_and_write() -> None:
        seen.append(list(Ephemeral.objects.values_list("text", flat=True)))
        Ephemeral.objects.create(text="thread")
        connections.close_all()

    thread = threading.Thread(target=read_and_write)
    thread.start()
    thread.join()
    assert seen == [["main"]]
    assert sorted(Ephemeral.objects.values_list("text", flat=True)) == ["main", "thread"]


@pytest.mark.parametrize("model", [Ephemeral, Persistent])
def test_concurrent_writers_wait_instead_of_failing(model: type) -> None:
    threads, per_thread = 8, 40
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def write(number: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                if i % 4 == 0:
                    with transaction.atomic(using="django_memdb"):
                        model.objects.create(text=f"{number}-{i}")
                        model.objects.filter(text=f"{number}-{i}").update(text=f"{number}-{i}")
                else:
                    model.objects.create(text=f"{number}-{i}")
                model.objects.filter(text__startswith=f"{number}-").count()
        except BaseException as exc:  # noqa: B036 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=write, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert model.objects.count() == threads * per_thread
    if model is Persistent:
        assert PersistentStorage.objects.filter(modelname="Persistent").count() == 1
