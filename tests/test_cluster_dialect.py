"""The server's id of a session, as the capture triggers record it (cluster mode)."""

from __future__ import annotations

import pytest
from django.db import connections

from django_memdb.cluster import dialect


class _Counting:
    """A DB-API connection that counts the cursors it hands out."""

    def __init__(self, connection: object) -> None:
        self.connection = connection
        self.cursors = 0

    def cursor(self) -> object:
        self.cursors += 1
        return self.connection.cursor()  # type: ignore[attr-defined]


@pytest.mark.database("postgresql", "mariadb")
@pytest.mark.django_db
def test_the_id_is_the_servers_own_and_asked_once_per_connection() -> None:
    # A proxy (pgbouncer, ProxySQL) reports its own session in the client's
    # connection info: the id must be the one the triggers see on the server.
    wrapper = connections["default"]
    wrapper.ensure_connection()
    sql = "SELECT pg_backend_pid()" if wrapper.vendor == "postgresql" else "SELECT CONNECTION_ID()"
    with wrapper.cursor() as cursor:
        cursor.execute(sql)
        server_id = cursor.fetchone()[0]
    counted = _Counting(wrapper.connection)
    found = dialect.for_connection(wrapper)
    assert found.connection_id(counted) == server_id
    assert found.connection_id(counted) == server_id
    assert counted.cursors == 1
