"""Experiment: two SQL strategies for the point-in-time join on featureledger's own storage.

    python benchmarks/bench_pit.py --size l --workdir /tmp/flb-l    # builds the repo once
    python benchmarks/pit_strategies.py --workdir /tmp/flb-l --size l [--repeat 2]

Runs, each in its own child process (so peak RSS is that query's), on the Parquet files
of the latest data version of each group in WORKDIR/repo:

* ``asof``: what ``DuckDBEngine.pit_join`` does today: ASOF LEFT JOIN per group, TTL as a
  CASE on the matched row, ORDER BY the entity row number.
* ``range``: for groups with a TTL, an inner hash join on the key with the TTL window as
  range predicates (``t - ttl <= e <= t``), ``arg_max(struct of features, event_time)``
  per entity row, then LEFT JOINs back onto the entity frame. Storage is unique on
  (key, event_time), so arg_max has no ties to break, and the result is the same.

The range join builds its hash table on the (smaller) entity frame and streams the group
scan through it, so it never sorts the 10M-row groups; its cost grows with the rows that
fall inside the TTL windows, so it only suits groups whose TTL is short relative to how
often a key gets a new row (here ~8 rows per 30-day window). Without a TTL, or with a long
one, the ASOF join must stay. The script checks both return identical tables.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, emit, gib, peak_rss_bytes, run_child, secs

GROUPS = [
    ("user_stats", [f"f{i}" for i in range(8)] + ["c0", "s0"], 30),
    ("user_txn", [f"g{i}" for i in range(4)], 7),
]
DAY_US = 86_400 * 1_000_000


def _scan(files: list[str]) -> str:
    return "read_parquet([" + ", ".join(f"'{f}'" for f in files) + "])"


def asof_sql(files: dict[str, list[str]]) -> str:
    sel = ["e.user_id", "e.event_timestamp", "e.label"]
    joins = []
    for i, (g, feats, days) in enumerate(GROUPS):
        a = f"g{i}"
        joins.append(
            f"ASOF LEFT JOIN (SELECT user_id AS k, event_timestamp AS et, {', '.join(feats)} "
            f"FROM {_scan(files[g])}) {a} ON e.user_id = {a}.k AND e.event_timestamp >= {a}.et"
        )
        sel += [
            f"CASE WHEN epoch_us({a}.et) >= epoch_us(e.event_timestamp) - {days * DAY_US} "
            f"THEN {a}.{f} END AS {f}"
            for f in feats
        ]
    return f"SELECT {', '.join(sel)} FROM entities e {' '.join(joins)} ORDER BY e.__fl_row"


def range_sql(files: dict[str, list[str]]) -> str:
    ctes, joins = [], []
    sel = ["e.user_id", "e.event_timestamp", "e.label"]
    for i, (g, feats, days) in enumerate(GROUPS):
        packed = "{" + ", ".join(f"'{f}': g.{f}" for f in feats) + "}"
        ctes.append(
            f"m{i} AS (SELECT e.__fl_row AS r, arg_max({packed}, g.event_timestamp) AS v "
            f"FROM entities e JOIN {_scan(files[g])} g ON e.user_id = g.user_id "
            "AND g.event_timestamp <= e.event_timestamp "
            f"AND epoch_us(g.event_timestamp) >= epoch_us(e.event_timestamp) - {days * DAY_US} "
            "GROUP BY e.__fl_row)"
        )
        joins.append(f"LEFT JOIN m{i} ON m{i}.r = e.__fl_row")
        sel += [f"m{i}.v.{f} AS {f}" for f in feats]
    return (
        f"WITH {', '.join(ctes)} SELECT {', '.join(sel)} FROM entities e "
        f"{' '.join(joins)} ORDER BY e.__fl_row"
    )


def child(args: argparse.Namespace) -> None:
    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from featureledger import FeatureStore

    store = FeatureStore(Path(args.workdir) / "repo")
    files = {}
    for g, _, _ in GROUPS:
        table = store._svc.tables.table(g, 1)
        files[g] = table.files(table.latest_version())
    ents = pq.read_table(DATA / args.size / "entities.parquet")
    ents = ents.append_column("__fl_row", pa.array(np.arange(ents.num_rows, dtype=np.int64)))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("entities", ents)
    sql = asof_sql(files) if args.strategy == "asof" else range_sql(files)
    t0 = time.perf_counter()
    table = con.sql(sql).to_arrow_table()
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    if args.out:
        pq.write_table(table, args.out)
    emit({"ok": True, "seconds": seconds, "peak_rss": peak, "rows": table.num_rows})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", required=True, help="the --workdir of a bench_pit.py run")
    ap.add_argument("--size", default="l")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--strategy", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.strategy:
        child(args)
        return
    import pyarrow.parquet as pq

    me = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--workdir",
        args.workdir,
        "--size",
        args.size,
    ]
    out = Path(args.workdir) / "strategies"
    out.mkdir(exist_ok=True)
    best: dict[str, dict[str, Any]] = {}
    for rep in range(args.repeat):
        for strategy in ("asof", "range"):
            extra = ["--out", str(out / f"{strategy}.parquet")] if rep == 0 else []
            r = run_child([*me, "--strategy", strategy, *extra])
            if r.get("error"):
                raise SystemExit(f"{strategy} failed: {r['error']}")
            print(
                f"  {strategy} run {rep + 1}: {secs(r['seconds'])}, peak RSS "
                f"{gib(r['peak_rss'])} (load avg {r['load1_before']:.1f})",
                flush=True,
            )
            if strategy not in best or r["seconds"] < best[strategy]["seconds"]:
                best[strategy] = r
    a, b = pq.read_table(out / "asof.parquet"), pq.read_table(out / "range.parquet")
    same = a.equals(b.cast(a.schema))
    print(f"\n== PIT join strategies, size {args.size} (best of {args.repeat}) ==")
    for name, r in best.items():
        print(f"{name:<8}{secs(r['seconds']):>10}{gib(r['peak_rss']):>12}")
    print(
        f"range/asof time: {best['range']['seconds'] / best['asof']['seconds']:.2f}x; "
        f"identical results: {same}"
    )


if __name__ == "__main__":
    main()
