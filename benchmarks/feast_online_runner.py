"""Feast's side of bench_online_vs_feast.py; runs inside benchmarks/.venv-feast.

    benchmarks/.venv-feast/bin/python benchmarks/feast_online_runner.py --data users.parquet \\
        --workdir DIR [--reads 3000] [--reads-100 1000] [--seed 7] [--check-keys keys.json] \\
        [--offline-store duckdb|file] [--materialize-repeat 1]

``--data`` is one Parquet file: ``user_id`` (int64), ``event_timestamp`` (UTC) and 14 float64
features ``f00``..``f13``. The runner builds a Feast repository in ``--workdir`` (kept, so the
driver can start ``feast serve`` on it afterwards): entity ``user`` (join key ``user_id``),
a FileSource over the Parquet file, FeatureView ``user_stats`` (TTL 30 days, online) and the
SQLite online store. Then:

- materialization: ``FeatureStore.materialize(start, end)`` over a window holding every
  source row, timed end to end (source rows/s); with ``--materialize-repeat`` > 1 it runs
  again over the now full online store and keeps every time;
- in-process reads: ``get_online_features(features=[...], entity_rows=[...]).to_dict()``
  for 1 and for 100 random entities (the same key sequences as featureledger's, from
  ``common.request_keys``), timed one call at a time after a warm-up;
- the values of ``--check-keys`` (a JSON list of keys), for the driver to compare cell for
  cell with featureledger's.

Results are one tagged JSON line (``common.emit``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, peak_rss_bytes, request_keys, time_calls, write_feast_repo

FEATURES = [f"f{i:02d}" for i in range(14)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--reads", type=int, default=3000, help="calls for 1 entity")
    ap.add_argument("--reads-100", type=int, default=1000, help="calls for 100 entities")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--check-keys", type=Path)
    ap.add_argument("--offline-store", choices=["duckdb", "file"], default="duckdb")
    ap.add_argument("--materialize-repeat", type=int, default=1)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    import feast
    import pyarrow.parquet as pq
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    data = args.data.resolve()
    meta = pq.read_metadata(data)
    rows = meta.num_rows
    times = pq.read_table(data, columns=["event_timestamp"]).column(0)
    first = min(times.to_pylist())
    last = max(times.to_pylist())

    repo = args.workdir.resolve()
    write_feast_repo(repo, args.offline_store)
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="user_stats",
        entities=[user],
        ttl=timedelta(days=30),
        schema=[Field(name=f, dtype=Float64) for f in FEATURES],
        source=FileSource(
            name="user_stats_source", path=str(data), timestamp_field="event_timestamp"
        ),
        online=True,
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([user, view])

    # materialization: the window [first, last] widened by a second on each side
    start, end = first - timedelta(seconds=1), last + timedelta(seconds=1)
    materialize_s = []
    for _ in range(max(1, args.materialize_repeat)):
        t0 = time.perf_counter()
        store.materialize(start_date=start, end_date=end)
        materialize_s.append(time.perf_counter() - t0)

    features = [f"user_stats:{f}" for f in FEATURES]

    def read(entity_rows: list[dict[str, int]]) -> dict[str, list[object]]:
        return store.get_online_features(features=features, entity_rows=entity_rows).to_dict()

    def as_rows(keys: list[list[int]]) -> list[list[dict[str, int]]]:
        return [[{"user_id": k} for k in ks] for ks in keys]

    one = as_rows(request_keys(rows, 1, args.reads, args.seed))
    hundred = as_rows(request_keys(rows, 100, args.reads_100, args.seed + 1))
    reads = {
        "1 entity x 14": time_calls(read, one, warmup=min(500, len(one))),
        "100 entities x 14": time_calls(read, hundred, warmup=min(100, len(hundred))),
    }
    check = None
    if args.check_keys:
        keys = json.loads(args.check_keys.read_text())
        check = read([{"user_id": k} for k in keys])

    emit(
        {
            "ok": True,
            "feast": feast.__version__,
            "offline_store": args.offline_store,
            "rows": rows,
            "window": [str(start), str(end), str(datetime.now(UTC))],
            "materialize_s": materialize_s,
            "materialize_rows_per_s": rows / materialize_s[0],
            "read": reads,
            "check": check,
            "peak_rss": peak_rss_bytes(),
        }
    )


if __name__ == "__main__":
    main()
