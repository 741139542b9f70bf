"""Benchmarks of the project's models on real, labelled third-party data (run on demand)."""
