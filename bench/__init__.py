"""Benchmarks: run from the repository root as `python -m bench.NAME` (bench/run_all.sh runs them all)."""
