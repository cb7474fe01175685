"""A persistent lookup table seeded by a data migration (installed by tests.settings_seeded only).

The first start stores its seed (lifecycle.bootstrap): with it installed,
storage would hold rows that the tests of the other apps do not expect.
"""
