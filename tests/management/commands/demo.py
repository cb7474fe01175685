"""``manage.py demo`` of the checkout: ``memdb_demo`` on the test project's models."""

from __future__ import annotations

from django_memdb.management.commands import memdb_demo


class Command(memdb_demo.Command):
    persistent_model = "tests.Persistent"
    ephemeral_model = "tests.Ephemeral"
