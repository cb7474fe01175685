"""Which NAME the in-memory alias accepts, and the error for any other.

Shared by check E002 and the engine itself, which refuses to open a file on
disk for code that skips the checks (``shell``, scripts).
"""

from __future__ import annotations

from typing import Any

ENGINE = "django_memdb.backend"
EXAMPLE_NAME = "file:django_memdb?mode=memory&cache=shared"


def is_in_memory(name: Any) -> bool:
    """True for a NAME SQLite opens in memory (Django always opens it as a URI)."""
    name = str(name)
    return name == ":memory:" or "mode=memory" in name


def not_in_memory(alias: str, engine: Any, name: Any) -> tuple[str, str]:
    """The error and its hint for an alias that is not an in-memory database of django-memdb."""
    return (
        f"DATABASES['{alias}'] is not an in-memory database of django-memdb "
        f"(ENGINE {engine!r}, NAME {str(name)!r}).",
        f"Use 'ENGINE': '{ENGINE}' with a NAME such as '{EXAMPLE_NAME}'. With another "
        "engine every thread or request gets its own empty database.",
    )
