"""A persistent lookup table seeded by a data migration (installed by tests.settings_seeded only).

Its seed is never stored: with it installed, memory and storage differ until
a seeded row changes or ``memdb_spool`` stores the table, which the tests of
the other apps would see.
"""
