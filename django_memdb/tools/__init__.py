"""0.0.6 import paths, kept for compatibility."""
