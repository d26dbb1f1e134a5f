"""Benchmarks: each script prints its figures and appends them to benchmarks/RESULTS.md."""
