"""System checks of cluster mode: a server every process reaches, and tables it can hold."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import load_backend

from .. import registry
from ..conf import conf
from . import dialect


def _vendor(engine: str) -> str:
    try:
        return str(load_backend(engine).DatabaseWrapper.vendor)
    except ImproperlyConfigured:  # its driver is not installed here: judge by the name
        return "mysql" if "mysql" in engine else "postgresql" if "postg" in engine else engine or "no engine"


def check_cluster() -> list[CheckMessage]:
    """Cluster mode needs a server, and MariaDB/MySQL MEMORY tables hold no TEXT/BLOB."""
    alias = conf.MEMDB_CLUSTER_DATABASE
    source = settings.DATABASES.get(alias)
    if source is None:
        return [
            Error(
                f"MEMDB_MODE is 'cluster' but MEMDB_CLUSTER_DATABASE names '{alias}', which is not in DATABASES.",
                hint="Set MEMDB_CLUSTER_DATABASE to the alias of a PostgreSQL or MariaDB/MySQL database.",
                id="django_memdb.E011",
            )
        ]
    vendor = _vendor(source.get("ENGINE", ""))
    if vendor not in ("postgresql", "mysql"):
        return [
            Error(
                f"MEMDB_MODE is 'cluster' but DATABASES['{alias}'] is {vendor}: cluster mode keeps "
                "the in-memory tables on a PostgreSQL or MariaDB/MySQL server.",
                hint="Point MEMDB_CLUSTER_DATABASE at such a database, or use MEMDB_MODE 'host' (one "
                "machine) or 'process'.",
                id="django_memdb.E011",
            )
        ]
    if vendor != "mysql":
        return []
    errors: list[CheckMessage] = []
    for model in registry.in_memory_models():
        problems = dialect.memory_problems(model)
        if problems:
            errors.append(
                Error(
                    f"{model._meta.label} cannot live in a MariaDB/MySQL MEMORY table: "
                    + "; ".join(problems) + ".",
                    hint="MEMORY tables hold no TEXT, BLOB or JSON columns and rows of at most 64 KiB: "
                    "use CharField(max_length=...) for short text, or keep the in-memory tables on "
                    "PostgreSQL (UNLOGGED tables have no such limits), or use MEMDB_MODE 'host'.",
                    obj=model,
                    id="django_memdb.E012",
                )
            )
    return errors
