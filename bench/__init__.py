"""Reproducible benchmarks (not timed tests); ``bench.fns`` holds their code-node callables."""
