"""In-memory models whose schema grew over several migrations, with foreign keys.

Foreign keys make Django defer SQL to the end of a migration, and SQLite's
schema editor refuses to start while a transaction is open: every migration
after the first must run on a connection in autocommit mode.
"""
