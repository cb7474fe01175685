"""The ``django_memdb.backend`` database engine."""
