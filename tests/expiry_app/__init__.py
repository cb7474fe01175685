"""Expiring and bounded in-memory models of the tests (see tests/test_expiry.py)."""
