"""A demo app: add ``django_memdb.demo`` to INSTALLED_APPS and run ``manage.py memdb_demo``."""
