"""Synthetic rule sets for the tests and benchmarks (test code, not shipped in the collection)."""
