"""Upsert benchmark: does the cost of an upsert grow with the batch or with the table?

    python benchmarks/bench_ingest.py [--repeat 2] [--cases a,b,c,d,e] [--workdir DIR]

Builds two feature groups with the user_stats schema of generate.py (100k users, one
year of event times, no duplicates): one holding 10M rows and one holding 1M rows, then
times ``FeatureStore.ingest(group, batch, mode="upsert")`` for:

  a. 1M new rows into the 10M-row group (the next month of events)
  b. 1M new rows into the 1M-row group (same batch as a; a/b ~ 1 means the cost follows
     the batch, not the table)
  c. 100k new rows into the 10M-row group (the next ~3 days)
  d. 10k corrections into the 10M-row group: existing (user_id, event_timestamp) keys
     spread over the whole year, with a later created_timestamp and new values, so they
     replace stored rows
  e. 1M new rows into the 10M-row group spread over the whole stored year (a backfill:
     new keys, but in the stored time range, so file statistics cannot skip any file)

Each case runs in its own child process on a fresh copy of the base repository, with the
batch already in memory as an Arrow table, so the time is the upsert alone. Every case
is run ``--repeat`` times and the best is kept. Inputs go to benchmarks/data/ingest/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, emit, gib, machine_facts, peak_rss_bytes, run_child, secs

USERS = 100_000
DAY_US = 86_400 * 1_000_000
OUT = DATA / "ingest"
CASES: dict[str, tuple[str, str, str]] = {  # case -> (base repo, batch file, description)
    "a": ("10m", "new_1m", "upsert 1M new rows into 10M"),
    "b": ("1m", "new_1m", "upsert 1M new rows into 1M"),
    "c": ("10m", "new_100k", "upsert 100k new rows into 10M"),
    "d": ("10m", "fix_10k", "upsert 10k corrections into 10M"),
    "e": ("10m", "backfill_1m", "upsert 1M backfill rows (whole year) into 10M"),
    # profile only (--profile f): the first ingest of the 10M-row base into an empty group
    "f": ("empty", "base_10m", "first ingest of 10M rows into an empty group"),
}


def make_inputs(force: bool = False) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from generate import T0_US, YEAR_US, user_stats

    OUT.mkdir(parents=True, exist_ok=True)
    marker = OUT / "meta.json"
    if marker.exists() and not force:
        return
    t0 = time.perf_counter()
    base10 = user_stats(10_000_000, USERS, seed=101, dup_fraction=0.0)
    pq.write_table(base10, OUT / "base_10m.parquet")
    # corrections: 10k stored keys spread over the year, created a day later, new values
    rng = np.random.default_rng(106)
    pick = np.sort(rng.choice(base10.num_rows, 10_000, replace=False))
    fix = user_stats(10_000, USERS, seed=107, dup_fraction=0.0)
    keys = base10.select(["user_id", "event_timestamp", "created_timestamp"]).take(pick)
    later = pc.add(keys.column("created_timestamp"), pa.scalar(DAY_US, pa.duration("us")))
    fix = fix.set_column(0, "user_id", keys.column("user_id"))
    fix = fix.set_column(1, "event_timestamp", keys.column("event_timestamp"))
    fix = fix.set_column(2, "created_timestamp", later.cast(fix.schema.field(2).type))
    pq.write_table(fix, OUT / "fix_10k.parquet")
    del base10, keys, fix
    pq.write_table(
        user_stats(1_000_000, USERS, seed=102, dup_fraction=0.0), OUT / "base_1m.parquet"
    )
    next_month = T0_US + YEAR_US
    pq.write_table(
        user_stats(
            1_000_000, USERS, seed=103, t0_us=next_month, span_us=31 * DAY_US, dup_fraction=0.0
        ),
        OUT / "new_1m.parquet",
    )
    pq.write_table(
        user_stats(
            100_000, USERS, seed=104, t0_us=next_month, span_us=3 * DAY_US, dup_fraction=0.0
        ),
        OUT / "new_100k.parquet",
    )
    pq.write_table(
        user_stats(1_000_000, USERS, seed=105, dup_fraction=0.0), OUT / "backfill_1m.parquet"
    )
    marker.write_text(json.dumps({p.name: p.stat().st_size for p in OUT.glob("*.parquet")}))
    print(f"inputs written to {OUT} in {time.perf_counter() - t0:.1f} s", flush=True)


def group_def() -> Any:
    from featureledger import Entity, FeatureGroup, Field

    user = Entity("user", join_keys=["user_id"])
    return FeatureGroup(
        "user_stats",
        user,
        features=[Field(f"f{i}", "float64") for i in range(8)]
        + [Field("c0", "int64"), Field("s0", "string")],
        event_time="event_timestamp",
        created_time="created_timestamp",
        ttl=timedelta(days=30),
    )


# -- children -------------------------------------------------------------------------------------
def child_base(args: argparse.Namespace) -> None:
    import pyarrow.parquet as pq

    from featureledger import FeatureStore

    store = FeatureStore.init(args.repo, project="bench-ingest")
    store.apply([group_def()])
    batch = pq.read_table(args.batch)
    t0 = time.perf_counter()
    record = store.ingest("user_stats", batch)
    seconds = time.perf_counter() - t0
    emit(
        {
            "ok": True,
            "seconds": seconds,
            "rows_in": batch.num_rows,
            "rows": record.rows,
            "peak_rss": peak_rss_bytes(),
            "files": len(record.files),
        }
    )


def child_empty(args: argparse.Namespace) -> None:
    from featureledger import FeatureStore

    FeatureStore.init(args.repo, project="bench-ingest").apply([group_def()])
    emit({"ok": True})


def child_upsert(args: argparse.Namespace) -> None:
    import pyarrow.parquet as pq

    from featureledger import FeatureStore

    store = FeatureStore(args.repo)
    batch = pq.read_table(args.batch)
    before = store.versions("user_stats")[-1]
    t0 = time.perf_counter()
    record = store.ingest("user_stats", batch, mode="upsert")
    seconds = time.perf_counter() - t0
    emit(
        {
            "ok": True,
            "seconds": seconds,
            "rows_in": batch.num_rows,
            "rows_before": before.rows,
            "rows_after": record.rows,
            "rows_added": record.rows_added,
            "rows_removed": record.rows_removed,
            "operation": record.operation,
            "files_written": len(record.files),
            "peak_rss": peak_rss_bytes(),
        }
    )


def child_profile(args: argparse.Namespace) -> None:
    """One upsert with the time of each step of write_batch (for the report)."""
    import pyarrow.parquet as pq
    from bench_pit import _module_with

    import featureledger.versioning.writer as wr
    from featureledger import FeatureStore
    from featureledger.offline import delta as dl
    from featureledger.offline.duckdb import DuckDBEngine

    spent: dict[str, float] = {}

    def timed(owner: Any, name: str, label: str) -> None:
        real = getattr(owner, name)

        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return real(*a, **k)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t

        setattr(owner, name, wrapper)

    timed(
        _module_with("conform_batch", "featureledger.store._data", "featureledger.store"),
        "conform_batch",
        "conform_batch",
    )
    timed(DuckDBEngine, "dedupe_sorted", "dedupe_sorted (DuckDB)")
    timed(wr, "candidate_files", "candidate_files (Delta stats)")
    timed(DuckDBEngine, "matching_rows", "matching_rows (DuckDB scan+join)")
    timed(wr, "row_values", "row_values (compare matches)")
    timed(wr, "content_hash", "content_hash (added/removed)")
    timed(dl.DeltaGroupTable, "append", "delta append")
    timed(dl.DeltaGroupTable, "merge", "delta merge")
    timed(dl.DeltaGroupTable, "checksums", "sha256 of new files")
    timed(FeatureStore, "_sync_versions", "_sync_versions")
    timed(FeatureStore, "_record_version", "_record_version (registry)")
    store = FeatureStore(args.repo)
    batch = pq.read_table(args.batch)
    t0 = time.perf_counter()
    store.ingest("user_stats", batch, mode="upsert")
    seconds = time.perf_counter() - t0
    spent["other"] = seconds - sum(spent.values())
    emit({"ok": True, "seconds": seconds, "profile": spent})


# -- parent ---------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cases", default="a,b,c,d,e")
    ap.add_argument("--profile", default="", help="cases to profile step by step, e.g. a,d")
    ap.add_argument("--workdir", help="keep base repositories here (reused when present)")
    ap.add_argument("--json", help="write all measurements to this file")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--repo", help=argparse.SUPPRESS)
    ap.add_argument("--batch", help=argparse.SUPPRESS)
    args = ap.parse_args()
    roles = {
        "base": child_base,
        "upsert": child_upsert,
        "profile": child_profile,
        "empty": child_empty,
    }
    if args.role:
        roles[args.role](args)
        return

    facts = machine_facts()
    print(f"machine: {facts.get('cpu')}, nproc={facts.get('nproc')}")
    make_inputs()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fl-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    report: dict[str, Any] = {"machine": facts, "base": {}, "cases": {}, "profile": {}}
    try:
        cases = [c for c in args.cases.split(",") if c]
        profiled = [c for c in args.profile.split(",") if c]
        if any(CASES[c][0] == "empty" for c in profiled):
            shutil.rmtree(work / "base_empty", ignore_errors=True)
            run_child([*me, "--role", "empty", "--repo", str(work / "base_empty")])
        for base in sorted({CASES[c][0] for c in cases + profiled} - {"empty"}, reverse=True):
            repo = work / f"base_{base}"
            if (repo / "featureledger.yaml").exists():
                print(f"base {base}: reusing {repo}")
                continue
            shutil.rmtree(repo, ignore_errors=True)
            r = run_child(
                [
                    *me,
                    "--role",
                    "base",
                    "--repo",
                    str(repo),
                    "--batch",
                    str(OUT / f"base_{base}.parquet"),
                ]
            )
            if r.get("error"):
                raise SystemExit(f"building base {base} failed: {r['error']}")
            report["base"][base] = r
            print(
                f"base {base}: first ingest of {r['rows_in']:,} rows in {secs(r['seconds'])} "
                f"({r['rows_in'] / r['seconds']:,.0f} rows/s), {r['files']} file(s), "
                f"peak RSS {gib(r['peak_rss'])}",
                flush=True,
            )
        scratch = work / "scratch"
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in cases}
        for rep in range(args.repeat):
            for c in cases:
                base, batch, desc = CASES[c]
                shutil.rmtree(scratch, ignore_errors=True)
                shutil.copytree(work / f"base_{base}", scratch)
                r = run_child(
                    [
                        *me,
                        "--role",
                        "upsert",
                        "--repo",
                        str(scratch),
                        "--batch",
                        str(OUT / f"{batch}.parquet"),
                    ]
                )
                runs[c].append(r)
                if r.get("error"):
                    print(f"  {c} ({desc}) run {rep + 1}: FAILED {r['error']}")
                else:
                    print(
                        f"  {c} ({desc}) run {rep + 1}: {secs(r['seconds'])}, "
                        f"{r['rows_before']:,} -> {r['rows_after']:,} rows "
                        f"(+{r['rows_added']:,} -{r['rows_removed']:,}), {r['operation']}, "
                        f"peak RSS {gib(r['peak_rss'])} (load avg {r['load1_before']:.1f})",
                        flush=True,
                    )
        for c in profiled:
            base, batch, desc = CASES[c]
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(work / f"base_{base}", scratch)
            r = run_child(
                [
                    *me,
                    "--role",
                    "profile",
                    "--repo",
                    str(scratch),
                    "--batch",
                    str(OUT / f"{batch}.parquet"),
                ]
            )
            report["profile"][c] = r.get("profile") or r.get("error")
        shutil.rmtree(scratch, ignore_errors=True)

        best = {}
        for c, rs in runs.items():
            ok = [r for r in rs if not r.get("error")]
            best[c] = min(ok, key=lambda r: r["seconds"]) if ok else rs[0]
            best[c]["all_seconds"] = [r.get("seconds") for r in rs]
        report["cases"] = best
        print(f"\n== upsert (best of {args.repeat}) ==")
        print(f"{'case':<52}{'time':>9}{'rows/s':>12}{'peak RSS':>11}")
        for c, r in best.items():
            desc = f"{c}. {CASES[c][2]}"
            if r.get("error"):
                print(f"{desc:<52}{'FAILED':>9}")
                continue
            print(
                f"{desc:<52}{secs(r['seconds']):>9}{r['rows_in'] / r['seconds']:>12,.0f}"
                f"{gib(r['peak_rss']):>11}"
            )

        def ratio(x: str, y: str, what: str) -> None:
            if x in best and y in best and not best[x].get("error") and not best[y].get("error"):
                print(f"  {what}: {best[x]['seconds'] / best[y]['seconds']:.2f}x")

        ratio("a", "b", "a/b  1M into 10M vs 1M into 1M (1.0 = cost follows the batch)")
        ratio("a", "c", "a/c  1M vs 100k into 10M (10 = linear in the batch)")
        ratio("e", "a", "e/a  1M backfill vs 1M next-month into 10M")
        ratio("d", "c", "d/c  10k corrections vs 100k new rows into 10M")
        if "a" in best and not best["a"].get("error"):
            ok = best["a"]["seconds"] <= 3.0
            print(
                f"  target: 1M into 10M in at most 3 s -> {best['a']['seconds']:.2f} s, "
                f"{'met' if ok else 'NOT met'}"
            )
        for c, prof in report["profile"].items():
            print(f"  step times of case {c} ({CASES[c][2]}):")
            if isinstance(prof, dict):
                for k, v in sorted(prof.items(), key=lambda kv: -kv[1]):
                    print(f"    {k:<40}{v:8.3f} s")
            else:
                print(f"    {prof}")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
