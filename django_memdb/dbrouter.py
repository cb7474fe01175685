"""0.0.6 import path of the router: ``DATABASE_ROUTERS = ['django_memdb.dbrouter.MemDB']``."""

from .router import MemDB

__all__ = ["MemDB"]
