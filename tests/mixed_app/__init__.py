"""An app with an in-memory model and a model of the default database, seeded by data migrations.

A data migration of such an app runs on the default database unless its
``hints`` name the model it is for (see migration 0002).
"""
