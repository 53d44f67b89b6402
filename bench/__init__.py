"""Reproducible benchmarks with their baselines (design §7: every published number comes from here).

Not part of the installed package: run from the repository root, e.g. `python -m bench.run_ingest`.
"""
