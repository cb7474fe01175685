"""What differs between PostgreSQL and MariaDB/MySQL in cluster mode: SQL only."""

from __future__ import annotations

import hashlib
import weakref
from typing import Any

from django.db import models

CHANGES = "django_memdb_changes"
MARKER = "django_memdb_cluster"


def _digest(text: str, size: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


# Per DB-API connection: the server's id of its session (Dialect.connection_id).
_server_ids: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class Dialect:
    vendor = ""
    create_table = ""
    restoring_on = ""
    restoring_off = ""

    def __init__(self, connection: Any) -> None:
        self.quote = connection.ops.quote_name
        self.name = str(connection.settings_dict["NAME"])

    def lock(self) -> str:
        raise NotImplementedError

    def lock_if(self, query: str) -> str | None:
        """The lock, taken only if ``query`` returns a row (no row back: not taken); None: run both apart."""
        return f"{self.lock()} FROM ({query}) AS found"

    def unlock(self) -> str:
        raise NotImplementedError

    def unlock_after(self, statement: str) -> list[str]:
        """Run ``statement`` (a DELETE), then release the lock: in as few round trips as the server allows."""
        return [statement, self.unlock()]

    def change_table(self) -> str:
        raise NotImplementedError

    # The statement that returns what the capture triggers record as ``conn``.
    server_id_sql = ""

    def connection_id(self, connection: Any) -> int:
        """The server's id of a live DB-API connection, asked once per connection.

        The capture triggers record it in each change row: a commit finds its
        own pending changes by it (cluster/spool.py). Asked of the server, not
        taken from the client's connection info: behind a proxy (pgbouncer,
        ProxySQL) that info names the proxy's session, and a commit would then
        never find its own rows and return before they are journaled.
        """
        found = _server_ids.get(connection)
        if found is None:
            cursor = connection.cursor()
            try:
                cursor.execute(self.server_id_sql)
                found = _server_ids[connection] = int(cursor.fetchone()[0])
            finally:
                cursor.close()
        return found

    def marker_table(self) -> str:
        raise NotImplementedError

    def drop_table(self, table: str) -> str:
        return f"DROP TABLE IF EXISTS {self.quote(table)}"

    def triggers(self, model: type[models.Model]) -> list[str]:
        raise NotImplementedError

    def sequence_resets(self, model_list: list[type[models.Model]]) -> list[str]:
        """Statements that start key sequences after the loaded rows (none: AUTO_INCREMENT follows)."""
        return []

    def bound_function(self) -> str | None:
        """The function the bound triggers call (None: no bounds on this server, check E016)."""
        return None

    def bound_triggers(self, model: type[models.Model], bound: int) -> list[str]:
        raise NotImplementedError


def _literal(text: str) -> str:
    return "'{}'".format(text.replace("'", "''"))


class PostgreSQL(Dialect):
    """UNLOGGED tables: kept in shared buffers and files, truncated after a crash."""

    vendor = "postgresql"
    # A custom setting of the session: the capture function skips rows while it is on.
    restoring_on = "SET django_memdb.restoring = 'on'"
    restoring_off = "SET django_memdb.restoring = 'off'"
    create_table = "CREATE UNLOGGED TABLE %(table)s (%(definition)s)"

    def lock(self) -> str:
        return "SELECT pg_advisory_lock(hashtext('django_memdb'))"

    def unlock(self) -> str:
        return "SELECT pg_advisory_unlock(hashtext('django_memdb'))"

    def unlock_after(self, statement: str) -> list[str]:
        # One statement; another process may take the lock before its DELETE commits:
        # it then journals those rows once more, in their current state.
        return [f"WITH done AS ({statement}) {self.unlock()}"]

    def change_table(self) -> str:
        return (
            f"CREATE UNLOGGED TABLE IF NOT EXISTS {self.quote(CHANGES)} "
            "(seq bigserial PRIMARY KEY, tbl varchar(255) NOT NULL, pk text NULL, conn integer NULL)"
        )

    server_id_sql = "SELECT pg_backend_pid()"

    def marker_table(self) -> str:
        return (
            f"CREATE UNLOGGED TABLE IF NOT EXISTS {self.quote(MARKER)} "
            "(fingerprint varchar(64) NOT NULL, started timestamp with time zone NOT NULL DEFAULT now())"
        )

    def drop_table(self, table: str) -> str:
        return super().drop_table(table) + " CASCADE"

    def sequence_resets(self, model_list: list[type[models.Model]]) -> list[str]:
        # Django's sequence_reset_sql puts the table name in a literal unescaped:
        # a name with a quote in it breaks it.
        statements = []
        for model in model_list:
            for field in model._meta.local_fields:
                if isinstance(field, models.AutoField):
                    table, column = self.quote(model._meta.db_table), self.quote(field.column)
                    statements.append(
                        f"SELECT setval(pg_get_serial_sequence({_literal(table)}, {_literal(field.column)}), "
                        f"coalesce(max({column}), 1), max({column}) IS NOT null) FROM {table}"
                    )
                    break
        return statements

    def capture_function(self) -> str:
        changes = self.quote(CHANGES)
        return (
            "CREATE OR REPLACE FUNCTION django_memdb_capture() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "DECLARE new_pk text; old_pk text; "
            "BEGIN "
            "IF current_setting('django_memdb.restoring', true) = 'on' THEN RETURN NULL; END IF; "
            f"IF TG_OP = 'TRUNCATE' THEN INSERT INTO {changes} (tbl, pk, conn) "
            "VALUES (TG_TABLE_NAME, NULL, pg_backend_pid()); "
            "RETURN NULL; END IF; "
            "IF TG_OP <> 'DELETE' THEN new_pk := to_jsonb(NEW) ->> TG_ARGV[0]; "
            f"INSERT INTO {changes} (tbl, pk, conn) VALUES (TG_TABLE_NAME, new_pk, pg_backend_pid()); END IF; "
            "IF TG_OP <> 'INSERT' THEN old_pk := to_jsonb(OLD) ->> TG_ARGV[0]; "
            f"IF old_pk IS DISTINCT FROM new_pk THEN INSERT INTO {changes} (tbl, pk, conn) "
            "VALUES (TG_TABLE_NAME, old_pk, pg_backend_pid()); "
            "END IF; END IF; "
            "RETURN NULL; END $$"
        )

    def triggers(self, model: type[models.Model]) -> list[str]:
        table = self.quote(model._meta.db_table)
        pk = _literal(model._meta.pk.column)
        rows, statement = self.quote("django_memdb_capture"), self.quote("django_memdb_capture_truncate")
        return [
            f"DROP TRIGGER IF EXISTS {rows} ON {table}",
            f"DROP TRIGGER IF EXISTS {statement} ON {table}",
            f"CREATE TRIGGER {rows} AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION django_memdb_capture({pk})",
            f"CREATE TRIGGER {statement} AFTER TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION django_memdb_capture({pk})",
        ]


    def bound_function(self) -> str:
        """Evicts the oldest rows (primary key order) down to the bound, after each inserting statement.

        The transaction-level advisory lock makes the inserters of a table take
        turns from their count until their commit: under READ COMMITTED each
        statement of the function sees what the previous holder committed, so
        no committed transaction leaves more rows than the bound. Its DELETE
        fires the capture trigger: a persistent table journals the eviction.
        """
        return (
            "CREATE OR REPLACE FUNCTION django_memdb_bound() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "DECLARE excess bigint; "
            "BEGIN "
            "IF current_setting('django_memdb.restoring', true) = 'on' THEN RETURN NULL; END IF; "
            "PERFORM pg_advisory_xact_lock(hashtext('django_memdb_bound ' || TG_TABLE_NAME)); "
            "EXECUTE format('SELECT count(*) - %s FROM %I.%I', TG_ARGV[1], TG_TABLE_SCHEMA, TG_TABLE_NAME) "
            "INTO excess; "
            "IF excess > 0 THEN "
            "EXECUTE format('DELETE FROM %I.%I WHERE %I IN (SELECT %I FROM %I.%I ORDER BY %I LIMIT %s)', "
            "TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_ARGV[0], TG_ARGV[0], TG_TABLE_SCHEMA, TG_TABLE_NAME, "
            "TG_ARGV[0], excess); "
            "END IF; "
            "RETURN NULL; END $$"
        )

    def bound_triggers(self, model: type[models.Model], bound: int) -> list[str]:
        table = self.quote(model._meta.db_table)
        trigger = self.quote("django_memdb_bound")
        return [
            f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
            f"CREATE TRIGGER {trigger} AFTER INSERT ON {table} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION django_memdb_bound({_literal(model._meta.pk.column)}, {int(bound)})",
        ]


class MySQL(Dialect):
    """ENGINE=MEMORY tables: in the server's RAM, empty after it restarts.

    MEMORY is not transactional: a rolled-back transaction keeps its writes to
    these tables, and the capture rows that go with them.
    """

    vendor = "mysql"
    restoring_on = "SET @django_memdb_restoring = 1"
    restoring_off = "SET @django_memdb_restoring = NULL"
    create_table = "CREATE TABLE %(table)s (%(definition)s) ENGINE=MEMORY"

    def _lock_name(self) -> str:
        # Locks are server-wide: one per database.
        return "django_memdb." + _digest(self.name, 32)

    def lock(self) -> str:
        return f"SELECT GET_LOCK('{self._lock_name()}', 120)"

    def unlock(self) -> str:
        return f"SELECT RELEASE_LOCK('{self._lock_name()}')"

    def lock_if(self, query: str) -> str | None:
        # A statement locks the MEMORY tables it reads until it ends: waiting for the
        # lock inside it would hold off the holder's DELETE of the change rows.
        return None

    def change_table(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.quote(CHANGES)} "
            "(seq bigint AUTO_INCREMENT PRIMARY KEY, tbl varchar(255) NOT NULL, pk varchar(255) NULL, "
            "conn bigint unsigned NULL) ENGINE=MEMORY"
        )

    server_id_sql = "SELECT CONNECTION_ID()"

    def marker_table(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.quote(MARKER)} "
            "(fingerprint varchar(64) NOT NULL, started datetime(6) NOT NULL) ENGINE=MEMORY"
        )

    def triggers(self, model: type[models.Model]) -> list[str]:
        table_name = model._meta.db_table
        table, pk = self.quote(table_name), self.quote(model._meta.pk.column)
        literal = "'{}'".format(table_name.replace("\\", "\\\\").replace("'", "''"))
        base = f"django_memdb_{_digest(table_name)}"

        def record(key: str) -> str:
            # Concatenated, never %-formatted: the table name may hold a "%".
            return f"INSERT INTO {self.quote(CHANGES)} (tbl, pk, conn) VALUES ({literal}, {key}, CONNECTION_ID()); "

        guard = "IF @django_memdb_restoring IS NULL THEN "
        statements = [f"DROP TRIGGER IF EXISTS {self.quote(base + suffix)}" for suffix in ("_ins", "_upd", "_del")]
        statements += [
            f"CREATE TRIGGER {self.quote(base + '_ins')} AFTER INSERT ON {table} FOR EACH ROW "
            f"BEGIN {guard}{record('NEW.' + pk)}END IF; END",
            f"CREATE TRIGGER {self.quote(base + '_upd')} AFTER UPDATE ON {table} FOR EACH ROW "
            f"BEGIN {guard}{record('NEW.' + pk)}"
            f"IF NOT (OLD.{pk} <=> NEW.{pk}) THEN {record('OLD.' + pk)}END IF; END IF; END",
            f"CREATE TRIGGER {self.quote(base + '_del')} AFTER DELETE ON {table} FOR EACH ROW "
            f"BEGIN {guard}{record('OLD.' + pk)}END IF; END",
        ]
        return statements


def for_connection(connection: Any) -> Dialect:
    if connection.vendor == "postgresql":
        return PostgreSQL(connection)
    if connection.vendor == "mysql":
        return MySQL(connection)
    raise ValueError(f"cluster mode needs PostgreSQL or MariaDB/MySQL, not {connection.vendor}")


# What MEMORY tables cannot hold (see checks.py), from the field types alone:
# checks run without a connection, and without the MySQL driver if need be.

MEMORY_MAX_ROW = 65_535
# Internal types Django's MySQL backend stores as TEXT, BLOB or JSON columns...
_LONG = {"TextField": "longtext", "BinaryField": "longblob", "JSONField": "json"}
# ...and as varchar(max_length), which MEMORY stores at full length.
_VARCHAR = {"CharField", "SlugField", "EmailField", "URLField", "FilePathField", "FileField", "ImageField"}


def memory_problems(model: type[models.Model]) -> list[str]:
    """Why the columns of ``model`` cannot be a MariaDB/MySQL MEMORY table (empty if they can)."""
    problems, row = [], 0
    for field in model._meta.local_concrete_fields:
        kind = field.get_internal_type()
        if isinstance(field, models.ForeignKey):
            kind = field.target_field.get_internal_type()
        if kind in _LONG:
            problems.append(f"{field.name} ({type(field).__name__}) would be a {_LONG[kind]} column")
        max_length = getattr(field, "max_length", None)
        # Rows are fixed-length: varchar(n) takes 4 bytes per character in utf8mb4.
        row += 4 * max_length + 2 if kind in _VARCHAR and max_length else 8
    if row > MEMORY_MAX_ROW:
        problems.append(f"its rows would take up to {row} bytes (MEMORY's limit is {MEMORY_MAX_ROW})")
    return problems
