"""Benchmarks, run one at a time with ``python -m bench.<name>``; not part of the package."""
