"""Benchmarks with their targets. `python -m bench` (or `make bench`) runs them all and
prints each figure, its target and pass/fail; ratios are measured within one run."""
