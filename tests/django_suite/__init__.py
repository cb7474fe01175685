"""Django's own test suite run against ``django_memdb.backend`` and compared with stock SQLite.

``python -m tests.django_suite`` (see runner.py): every test of the chosen
labels that passes on Django's SQLite backend must pass on the engine, except
the differences listed, each with its reason, in known_differences.py.
"""
