"""Helpers for tests and benchmarks: tiny models built offline in the real on-disk formats."""
