"""Feast's side of bench_pit.py; runs inside benchmarks/.venv-feast (see setup_feast.sh).

    benchmarks/.venv-feast/bin/python benchmarks/feast_runner.py --data benchmarks/data/s \
        --store duckdb|file [--out result.parquet] [--workdir DIR]

Builds a Feast repository in a temp dir: entity ``user`` (user_id int64), FileSources over
the same Parquet files featureledger ingests (timestamp_field event_timestamp,
created_timestamp_column created_timestamp, so Feast de-duplicates on it), and FeatureViews
``user_stats`` (TTL 30 days) and ``user_txn`` (TTL 7 days). It then times
``get_historical_features(entity_df, features).to_arrow()`` with the entity frame already
in memory as a pandas DataFrame (Feast's entity input), and reports the process's peak RSS
right after that call.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import current_rss_bytes, emit, peak_rss_bytes, write_feast_repo

STATS_FEATURES = [f"f{i}" for i in range(8)] + ["c0", "s0"]
TXN_FEATURES = [f"g{i}" for i in range(4)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--store", choices=["duckdb", "file"], required=True)
    ap.add_argument("--out")
    ap.add_argument("--workdir")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    import pyarrow.parquet as pq
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float32, Float64, Int64, String

    data = Path(args.data).resolve()
    repo = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="feast-bench-"))
    write_feast_repo(repo, args.store)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)

    def source(name: str) -> FileSource:
        return FileSource(
            name=f"{name}_source",
            path=str(data / f"{name}.parquet"),
            timestamp_field="event_timestamp",
            created_timestamp_column="created_timestamp",
        )

    stats = FeatureView(
        name="user_stats",
        entities=[user],
        ttl=timedelta(days=30),
        schema=[Field(name=f"f{i}", dtype=Float64) for i in range(8)]
        + [Field(name="c0", dtype=Int64), Field(name="s0", dtype=String)],
        source=source("user_stats"),
        online=False,
    )
    txn = FeatureView(
        name="user_txn",
        entities=[user],
        ttl=timedelta(days=7),
        schema=[Field(name=f"g{i}", dtype=Float32) for i in range(4)],
        source=source("user_txn"),
        online=False,
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, stats, txn])
    features = [f"user_stats:{f}" for f in STATS_FEATURES] + [f"user_txn:{f}" for f in TXN_FEATURES]
    entity_df = pq.read_table(data / "entities.parquet").to_pandas()

    rss_before = current_rss_bytes()
    t0 = time.perf_counter()
    job = store.get_historical_features(entity_df=entity_df, features=features)
    table = job.to_arrow()
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    if args.out:
        pq.write_table(table, args.out)
    import feast

    emit(
        {
            "ok": True,
            "seconds": seconds,
            "rows": table.num_rows,
            "peak_rss": peak,
            "rss_before": rss_before,
            "feast": feast.__version__,
            "columns": table.column_names,
        }
    )


if __name__ == "__main__":
    main()
