"""Benchmarks (`make bench`): each prints a table and writes build/bench/<name>.json."""
