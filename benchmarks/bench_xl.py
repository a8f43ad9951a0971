"""Size xl: does a point-in-time join of 5M entity rows over two 50M-row groups finish within
the machine's memory?

    python benchmarks/bench_xl.py [--workdir DIR] [--chunks 5]

Generates each group as ``--chunks`` Parquet files of 10M rows (each a consecutive slice of
the year, with generate.py's schema, duplicates and seeds offset per chunk), ingests them
chunk by chunk (an upsert each, so the ingest's memory follows the chunk, not the table),
then times ``training_data(..., output=...)`` on 5M entity rows, streaming the result to
Parquet. Each step runs in its own process and reports its peak RSS. The baseline is size l
(10x smaller groups) from bench_pit.py; the script prints the ratios when
benchmarks/data/results holds an l result, else the absolute figures only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pyarrow.parquet as pq
from bench_pit import VIEW, definitions
from common import DATA, emit, gib, peak_rss_bytes, run_child
from generate import T0_US, YEAR_US, entities, user_stats, user_txn

CHUNK_ROWS = 10_000_000
USERS = 500_000
ENTITY_ROWS = 5_000_000


def generate(chunks: int) -> Path:
    out = DATA / "xl"
    out.mkdir(parents=True, exist_ok=True)
    span = YEAR_US // chunks
    for i in range(chunks):
        for name, make in (("user_stats", user_stats), ("user_txn", user_txn)):
            path = out / f"{name}-{i}.parquet"
            if path.exists():
                continue
            table = make(
                CHUNK_ROWS,
                USERS,
                seed=1000 * (i + 1) + len(name),
                t0_us=T0_US + i * span,
                span_us=span,
            )
            pq.write_table(table, path)
            del table
    ents = out / "entities.parquet"
    if not ents.exists():
        pq.write_table(entities(ENTITY_ROWS, USERS), ents)
    return out


def child_setup(args: argparse.Namespace) -> None:
    from featureledger import FeatureStore

    store = FeatureStore.init(args.repo, project="xl")
    store.apply(definitions())
    emit({"ok": True})


def child_ingest(args: argparse.Namespace) -> None:
    from featureledger import FeatureStore

    store = FeatureStore(args.repo)
    t0 = time.perf_counter()
    record = store.ingest(args.group, Path(args.data) / f"{args.group}-{args.chunk}.parquet")
    emit(
        {
            "ok": True,
            "seconds": time.perf_counter() - t0,
            "rows": record.rows,
            "peak_rss": peak_rss_bytes(),
        }
    )


def child_join(args: argparse.Namespace) -> None:
    from featureledger import FeatureStore

    store = FeatureStore(args.repo)
    ents = pq.read_table(Path(args.data) / "entities.parquet")
    t0 = time.perf_counter()
    td = store.training_data(VIEW, ents, output=Path(args.repo) / "xl-train.parquet")
    emit(
        {
            "ok": True,
            "seconds": time.perf_counter() - t0,
            "rows": td.record.rows,
            "peak_rss": peak_rss_bytes(),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir")
    ap.add_argument("--chunks", type=int, default=5)
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--repo", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--group", help=argparse.SUPPRESS)
    ap.add_argument("--chunk", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        {"setup": child_setup, "ingest": child_ingest, "join": child_join}[args.role](args)
        return
    data = generate(args.chunks)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fl-xl-"))
    repo = work / "repo"
    me = [sys.executable, __file__, "--repo", str(repo), "--data", str(data)]
    results: dict[str, Any] = {}
    if not repo.exists():
        run_child([*me, "--role", "setup"])
        for i in range(args.chunks):
            for group in ("user_stats", "user_txn"):
                r = run_child([*me, "--role", "ingest", "--group", group, "--chunk", str(i)])
                print(
                    f"ingest {group} chunk {i}: {r['seconds']:.2f} s, table now "
                    f"{r['rows']:,} rows, peak RSS {gib(r['peak_rss'])}",
                    flush=True,
                )
                results[f"ingest {group} {i}"] = r
    r = run_child([*me, "--role", "join"])
    results["join"] = r
    print(
        f"training_data xl: {r['rows']:,} rows in {r['seconds']:.2f} s, peak RSS "
        f"{gib(r['peak_rss'])} (machine: 24 GiB)"
    )
    baseline = DATA / "results" / "pit-l.json"
    if baseline.exists():
        base = json.loads(baseline.read_text()).get("featureledger", {})
        if base.get("seconds"):
            print(
                f"vs size l ({base['seconds']:.2f} s): {r['seconds'] / base['seconds']:.1f}x "
                "the time for 5x the entity rows and 5x the feature rows"
            )
    (work / "xl.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
