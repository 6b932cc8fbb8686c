"""Benchmarks: scripts whose figures are written into docs/benchmarks.md."""
