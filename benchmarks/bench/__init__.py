"""The benchmarks, one module each, and the harness they share (`harness`).

Each module has `bench(quick) -> dict` (every run kept) and `rows(results) -> list[Row]`;
`benchmarks/run.py` runs them in order and prints one table.
"""
