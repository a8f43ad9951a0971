"""Contract evaluation throughput: cell-checks per second for range + null rules.

    python benchmarks/bench_contracts.py [--rows 10_000_000] [--columns 8] [--repeat 3]
    python benchmarks/bench_contracts.py --compare   # also pandera / Great Expectations,
                                                     # when importable (see --help)

A cell-check is one rule applied to one cell: ``rows x (range rules + not-null rules)``.
Every column gets a ``range`` rule and is declared non-nullable (an implied ``not_null``
rule), so 8 columns are 16 rule-columns. Two batches are timed: a clean one (one query
counts every rule's failures and observes min/max) and one with a few out-of-range and
null cells (a second query then locates the failing rows, as ingestion needs for
quarantine). The issue's target is
50 million cell-checks/s on 2 cores. This is a benchmark script, not a timed test.

pandera and Great Expectations are never project dependencies: install them into a
separate environment (benchmarks/.venv-dq, see docs/contracts.md) and run this script with
that interpreter plus ``PYTHONPATH=src`` to get the side-by-side figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np
import pyarrow as pa

from featureledger.contracts import Column, Contract, Range, evaluate


def make_table(rows: int, columns: int, *, dirty: bool, seed: int = 7) -> pa.Table:
    """Uniform floats in [0, 100); ``dirty`` adds a few out-of-range cells and nulls."""
    rng = np.random.default_rng(seed)
    data = {}
    for i in range(columns):
        values = rng.uniform(0.0, 100.0, rows)
        mask = np.zeros(rows, dtype=bool)
        if dirty:
            values[rng.integers(0, rows, 10)] = 1e6
            mask[rng.integers(0, rows, 10)] = True
        data[f"c{i}"] = pa.array(values, mask=mask if dirty else None)
    return pa.table(data)


def make_contract(columns: int) -> Contract:
    names = [f"c{i}" for i in range(columns)]
    return Contract(
        "bench",
        columns=[Column(n, "float64", nullable=False) for n in names],
        rules=[Range(n, 0.0, 1000.0) for n in names],
    )


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_featureledger(table: pa.Table, contract: Contract, repeat: int, *, dirty: bool) -> float:
    report = evaluate(contract, table)
    assert report.ok != dirty, "a dirty batch must fail, a clean one pass"
    return best_of(lambda: evaluate(contract, table), repeat)


def bench_pandera(table: pa.Table, repeat: int) -> float | None:
    try:
        import pandera.pandas as pdr  # type: ignore[import-not-found]
    except ImportError:
        try:
            import pandera as pdr  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return None
    frame = table.to_pandas()
    schema = pdr.DataFrameSchema(
        {
            name: pdr.Column(float, pdr.Check.in_range(0.0, 1000.0), nullable=False)
            for name in table.column_names
        }
    )

    def run() -> None:
        with contextlib.suppress(pdr.errors.SchemaErrors):
            schema.validate(frame, lazy=True)

    return best_of(run, repeat)


def bench_great_expectations(table: pa.Table, repeat: int) -> float | None:
    try:
        import great_expectations as gx  # type: ignore[import-not-found]
    except ImportError:
        return None
    frame = table.to_pandas()
    context = gx.get_context(mode="ephemeral")
    try:  # GE draws a progress bar per validation; keep the output to the figures
        from great_expectations.data_context.types.base import (  # type: ignore[import-not-found]
            ProgressBarsConfig,
        )

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except (ImportError, AttributeError):
        pass
    source = context.data_sources.add_pandas("bench")
    asset = source.add_dataframe_asset("frame")
    batch_def = asset.add_batch_definition_whole_dataframe("all")
    suite = gx.ExpectationSuite("bench")
    for name in table.column_names:
        suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=name))
        suite.add_expectation(
            gx.expectations.ExpectColumnValuesToBeBetween(
                column=name, min_value=0.0, max_value=1000.0
            )
        )
    suite = context.suites.add(suite)

    def run() -> None:
        batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
        batch.validate(suite)

    return best_of(run, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also time pandera and Great Expectations if importable",
    )
    args = parser.parse_args()
    clean = make_table(args.rows, args.columns, dirty=False)
    table = make_table(args.rows, args.columns, dirty=True)
    contract = make_contract(args.columns)
    checks = args.rows * args.columns * 2
    print(
        f"{args.rows:,} rows x {args.columns} float64 columns, range + not_null on each: "
        f"{checks:,} cell-checks; {os.cpu_count()} CPU(s), python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    results = {
        "featureledger, clean batch": bench_featureledger(
            clean, contract, args.repeat, dirty=False
        ),
        "featureledger, batch with failures": bench_featureledger(
            table, contract, args.repeat, dirty=True
        ),
    }
    if args.compare:
        for label, fn in (
            ("pandera (pandas)", bench_pandera),
            ("Great Expectations (pandas)", bench_great_expectations),
        ):
            seconds = fn(table, args.repeat)
            if seconds is None:
                print(f"{label}: not installed in this interpreter; skipped")
            else:
                results[label] = seconds
    for label, seconds in results.items():
        print(f"{label:<36} {seconds:8.3f} s  {checks / seconds / 1e6:10.1f} M cell-checks/s")


if __name__ == "__main__":
    main()
