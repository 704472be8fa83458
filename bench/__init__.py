"""Benchmarks of mixweave against its peers, run as ratios in one process run (see BENCHMARKS.md)."""
