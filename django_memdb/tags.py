"""The tag classes, on their own so that the registry can know them without the identity map.

``mixins`` is their public home (and their ``__module__``, which migrations
record); it adds the identity map's tag and hooks.
"""

from __future__ import annotations


class InMemoryDB:
    """Tag: ``class M(models.Model, InMemoryDB)`` keeps M's table in memory."""

    __module__ = "django_memdb.mixins"


class PeristentInMemoryDB(InMemoryDB):
    """Tag: M's table is in memory and spooled to the default database.

    The name carries the spelling of django-memdb 0.0.6 and is kept for
    compatibility; ``PersistentInMemoryDB`` is the same class.
    """

    __module__ = "django_memdb.mixins"
