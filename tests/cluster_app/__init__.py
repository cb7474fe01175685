"""A test app whose in-memory models fit every cluster engine (MEMORY tables hold no TEXT)."""
