"""`python -m tests.bench [NAME ...]`: run the named benchmarks, or all of them."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["bridge", "ingest", "marketplaces", "orders", "memory", "scale", "scaleout"]


def main(argv: list[str]) -> None:
    names = [n for a in argv for n in a.split(",") if n] or BENCHMARKS
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    for name in names:
        importlib.import_module(f"tests.bench.bench_{name}").main()


main(sys.argv[1:])
