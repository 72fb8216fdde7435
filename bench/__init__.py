"""Benchmarks of the engine: journal commit rate, seda end to end, file to file.

``python -m bench`` lists them; ``python -m bench NAME [--n N] [--db ...]`` runs
them and prints one JSON line per figure. Results and their reading are kept in
``docs/benchmarks.md``.
"""

from bench.runner import Benchmark, Figure, Run, register

__all__ = ["Benchmark", "Figure", "Run", "register"]
