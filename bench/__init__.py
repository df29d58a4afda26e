"""Benchmarks: each prints its numbers and writes them under bench/results/ (not timed tests)."""
