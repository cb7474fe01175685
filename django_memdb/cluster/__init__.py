"""Cluster mode: the in-memory tables on a server every process shares.

PostgreSQL keeps them as ``UNLOGGED`` tables, MariaDB/MySQL as
``ENGINE=MEMORY`` tables, in the database of ``MEMDB_CLUSTER_DATABASE``.
Triggers record changes of persistent tables in a change table on the same
server; any process journals them, one at a time under a server-wide lock.
A marker row tells whether the server still holds the tables: when it is
gone (server restart, crash, truncation) the first process to notice
rebuilds and restores them from storage, once.
"""
