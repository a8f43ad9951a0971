"""Point-in-time join benchmark: featureledger vs a hand-written DuckDB query vs Feast.

    python benchmarks/bench_pit.py --size s|m|l [--shape base|few|skewed] [--feast] [--repeat 2]
        [--profile]

All contenders read the same Parquet files made by generate.py (generated first if
missing). Each measured join runs in its own child process, so its peak RSS is the peak
of the process doing the join (ru_maxrss, read right after the timed call):

(a) featureledger: ``FeatureStore.init`` in a temp dir, ``apply`` entity, groups and
    view, ``ingest`` each group (timed, rows/s), then ``training_data(view, entity_df)``
    with the entity frame already in memory as an Arrow table; the timed call includes
    everything ``training_data`` does (pins, hashes, registry records).
(b) a hand-written DuckDB query: window de-duplication of the raw Parquet files, then two
    ASOF LEFT JOINs with TTL filters, in entity order, fetched as an Arrow table.
(c) Feast with its DuckDB offline store and (d) Feast with its default file (Dask)
    offline store, run by feast_runner.py in benchmarks/.venv-feast (setup_feast.sh).

Each join is repeated ``--repeat`` times (contenders interleaved) and the best time is
reported, with the peak RSS of that run. Results are checked: row count against the
entity frame, entity order, and values against featureledger's (joined on the unique
(user_id, event_timestamp) of each entity row).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    FEAST_VENV,
    HERE,
    current_rss_bytes,
    emit,
    gib,
    machine_facts,
    peak_rss_bytes,
    run_child,
    secs,
)

STATS_FEATURES = [f"f{i}" for i in range(8)] + ["c0", "s0"]
TXN_FEATURES = [f"g{i}" for i in range(4)]
FEATURES = STATS_FEATURES + TXN_FEATURES
GROUPS = {  # name -> (features, ttl days)
    "user_stats": (STATS_FEATURES, 30),
    "user_txn": (TXN_FEATURES, 7),
}
VIEW = "training"


# -- children -------------------------------------------------------------------------------------
def definitions() -> list[Any]:
    from featureledger import Entity, FeatureGroup, FeatureView, Field

    user = Entity("user", join_keys=["user_id"])
    stats = FeatureGroup(
        "user_stats",
        user,
        features=[Field(f"f{i}", "float64") for i in range(8)]
        + [Field("c0", "int64"), Field("s0", "string")],
        event_time="event_timestamp",
        created_time="created_timestamp",
        ttl=timedelta(days=30),
    )
    txn = FeatureGroup(
        "user_txn",
        user,
        features=[Field(f"g{i}", "float32") for i in range(4)],
        event_time="event_timestamp",
        created_time="created_timestamp",
        ttl=timedelta(days=7),
    )
    return [user, stats, txn, FeatureView(VIEW, [stats, txn])]


def child_fl_apply(args: argparse.Namespace) -> None:
    from featureledger import FeatureStore

    t0 = time.perf_counter()
    store = FeatureStore.init(args.repo, project="bench")
    store.apply(definitions())
    emit({"ok": True, "seconds": time.perf_counter() - t0})


def child_fl_ingest(args: argparse.Namespace) -> None:
    from featureledger import FeatureStore

    store = FeatureStore(args.repo)
    path = Path(args.data) / f"{args.group}.parquet"
    t0 = time.perf_counter()
    record = store.ingest(args.group, path)  # featureledger reads the Parquet file itself
    seconds = time.perf_counter() - t0
    import pyarrow.parquet as pq

    rows_in = pq.ParquetFile(path).metadata.num_rows
    emit(
        {
            "ok": True,
            "seconds": seconds,
            "rows_in": rows_in,
            "rows_stored": record.rows,
            "identity": str(record.identity),
            "peak_rss": peak_rss_bytes(),
        }
    )


def _module_with(attr: str, *names: str) -> Any:
    """The first of ``names`` that can be imported and has ``attr`` (the store's layout moves)."""
    import importlib

    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, attr):
            return module
    raise SystemExit(f"profile: none of {names} has {attr!r}; update the hooks")


def _profile_hooks() -> dict[str, float]:
    """Wrap the steps of training_data with timers (profile mode only)."""
    import pyarrow.parquet as pq

    from featureledger.offline.duckdb import DuckDBEngine

    st = _module_with("content_hash", "featureledger.store._training", "featureledger.store")

    spent: dict[str, float] = {
        "entity_hash": 0.0,
        "result_hash": 0.0,
        "entity_parquet": 0.0,
        "duckdb_join (to_arrow_reader)": 0.0,
        "arrow_batches (reader)": 0.0,
        "conform_entities": 0.0,
    }
    calls = {"hash": 0}
    real_hash, real_write = st.content_hash, pq.write_table
    real_pit, real_conform = DuckDBEngine.pit_join, st.conform_entities

    def hash_(data: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_hash(data)
        finally:
            key = "entity_hash" if calls["hash"] == 0 else "result_hash"
            calls["hash"] += 1
            spent[key] += time.perf_counter() - t

    def write_(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_write(*a, **k)
        finally:
            spent["entity_parquet"] += time.perf_counter() - t

    def conform_(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_conform(*a, **k)
        finally:
            spent["conform_entities"] += time.perf_counter() - t

    def pit_(self: Any, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        reader = real_pit(self, *a, **k)
        spent["duckdb_join (to_arrow_reader)"] += time.perf_counter() - t

        def batches() -> Any:
            it = iter(reader)
            while True:
                t1 = time.perf_counter()
                try:
                    b = next(it)
                except StopIteration:
                    spent["arrow_batches (reader)"] += time.perf_counter() - t1
                    return
                spent["arrow_batches (reader)"] += time.perf_counter() - t1
                yield b

        return batches()

    from featureledger import FeatureStore

    if hasattr(FeatureStore, "_check_files"):  # SHA-256 / mtime check of the pinned files
        real_check = FeatureStore._check_files
        spent["file_integrity_check"] = 0.0

        def check_(self: Any, *a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return real_check(self, *a, **k)
            finally:
                spent["file_integrity_check"] += time.perf_counter() - t

        FeatureStore._check_files = check_  # type: ignore[method-assign]
    st.content_hash = hash_
    st.conform_entities = conform_
    pq.write_table = write_
    DuckDBEngine.pit_join = pit_

    return spent


def child_fl_join(args: argparse.Namespace) -> None:
    import pyarrow.parquet as pq

    from featureledger import FeatureStore

    store = FeatureStore(args.repo)
    ents = pq.read_table(Path(args.data) / "entities.parquet")
    spent = _profile_hooks() if args.profile else None
    rss_before = current_rss_bytes()
    t0 = time.perf_counter()
    td = store.training_data(VIEW, ents)
    table = td.to_arrow()
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    result: dict[str, Any] = {
        "ok": True,
        "seconds": seconds,
        "rows": table.num_rows,
        "peak_rss": peak,
        "rss_before": rss_before,
        "identity": str(td.identity),
    }
    if spent is not None:
        spent["other (registry, pins, cast, bookkeeping)"] = seconds - sum(spent.values())
        result["profile"] = spent
    if args.out:
        pq.write_table(table, args.out)
    emit(result)


def hand_sql(data: Path) -> str:
    def dedup(name: str, cols: list[str]) -> str:
        listed = ", ".join(["user_id", "event_timestamp", *cols])
        return (
            f"{name} AS (SELECT {listed} FROM read_parquet('{data / (name + '.parquet')}') "
            "QUALIFY row_number() OVER (PARTITION BY user_id, event_timestamp "
            "ORDER BY created_timestamp DESC) = 1)"
        )

    ttl = {"s": ("user_stats", 30), "t": ("user_txn", 7)}
    select = ["e.user_id", "e.event_timestamp", "e.label"]
    for alias, (group, days) in ttl.items():
        for f in GROUPS[group][0]:
            select.append(
                f"CASE WHEN {alias}.event_timestamp >= e.event_timestamp - INTERVAL {days} DAY "
                f"THEN {alias}.{f} END AS {f}"
            )
    return (
        f"WITH {dedup('user_stats', STATS_FEATURES)}, {dedup('user_txn', TXN_FEATURES)} "
        f"SELECT {', '.join(select)} FROM ents e "
        "ASOF LEFT JOIN user_stats s ON e.user_id = s.user_id "
        "AND e.event_timestamp >= s.event_timestamp "
        "ASOF LEFT JOIN user_txn t ON e.user_id = t.user_id "
        "AND e.event_timestamp >= t.event_timestamp "
        "ORDER BY e.__row"
    )


def child_duckdb(args: argparse.Namespace) -> None:
    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = Path(args.data)
    ents = pq.read_table(data / "entities.parquet")
    ents = ents.append_column("__row", pa.array(np.arange(ents.num_rows, dtype=np.int64)))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rss_before = current_rss_bytes()
    t0 = time.perf_counter()
    con.register("ents", ents)
    table = con.sql(hand_sql(data)).to_arrow_table()
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    if args.out:
        pq.write_table(table, args.out)
    emit(
        {
            "ok": True,
            "seconds": seconds,
            "rows": table.num_rows,
            "peak_rss": peak,
            "rss_before": rss_before,
            "duckdb": duckdb.__version__,
        }
    )


# -- checks ---------------------------------------------------------------------------------------
def check_result(path: Path, reference: Path | None, entities: Path) -> dict[str, Any]:
    """Row count, entity order, and value agreement with ``reference`` (featureledger)."""
    import duckdb
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    res = pq.read_table(path)
    ents = pq.read_table(entities)
    out: dict[str, Any] = {
        "rows": res.num_rows,
        "entity_rows": ents.num_rows,
        "same_rows": res.num_rows == ents.num_rows,
    }

    def epoch_us(col: Any) -> Any:
        import pyarrow as pa

        return (
            pc.cast(col, pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        )

    if res.num_rows == ents.num_rows:
        out["entity_order"] = bool(
            np.array_equal(res.column("user_id").to_numpy(), ents.column("user_id").to_numpy())
            and np.array_equal(
                epoch_us(res.column("event_timestamp")), epoch_us(ents.column("event_timestamp"))
            )
        )
    else:
        out["entity_order"] = None
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # how many entity rows got any feature at all, per group
    out["rows_with_stats"] = con.sql(
        f"SELECT count(*) FROM read_parquet('{path}') WHERE f0 IS NOT NULL OR c0 IS NOT NULL"
    ).fetchall()[0][0]
    out["rows_with_txn"] = con.sql(
        f"SELECT count(*) FROM read_parquet('{path}') WHERE g0 IS NOT NULL"
    ).fetchall()[0][0]
    if reference is not None and reference != path:
        diff_cols = ", ".join(
            f"sum(CASE WHEN b.__k IS NOT NULL AND a.{f}::{'VARCHAR' if f == 's0' else 'DOUBLE'} "
            f"IS DISTINCT FROM b.{f}::{'VARCHAR' if f == 's0' else 'DOUBLE'} THEN 1 ELSE 0 END) "
            f"AS {f}"
            for f in FEATURES
        )
        row = con.sql(
            f"SELECT count(*) AS ref_rows, count(b.__k) AS matched, {diff_cols} "
            f"FROM (SELECT *, 1 AS __r FROM read_parquet('{reference}')) a "
            f"LEFT JOIN (SELECT *, 1 AS __k FROM read_parquet('{path}')) b "
            "ON a.user_id = b.user_id AND epoch_us(a.event_timestamp::TIMESTAMPTZ) = "
            "epoch_us(b.event_timestamp::TIMESTAMPTZ)"
        ).fetchall()[0]
        ref_rows, matched, *diffs = row
        per_col = {f: int(d or 0) for f, d in zip(FEATURES, diffs, strict=True)}
        out["matched_reference_rows"] = int(matched)
        out["missing_reference_rows"] = int(ref_rows - matched)
        out["cells_differing"] = sum(per_col.values())
        out["cells_differing_by_column"] = {k: v for k, v in per_col.items() if v}
        # cells are compared only on rows present in both results
        out["values_agree"] = out["cells_differing"] == 0 and matched == ref_rows
    return out


# -- parent ---------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("featureledger", "duckdb", "pyarrow", "deltalake", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "?"
    return out


def feast_python() -> Path | None:
    py = FEAST_VENV / "bin" / "python"
    return py if py.exists() else None


def ensure_feast() -> Path:
    py = feast_python()
    if py is None:
        print("creating benchmarks/.venv-feast (benchmarks/setup_feast.sh) ...", flush=True)
        import subprocess

        subprocess.run(["bash", str(HERE / "setup_feast.sh")], check=True)
        py = feast_python()
        assert py is not None
    return py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=["s", "m", "l"], default="s")
    ap.add_argument(
        "--shape", choices=["base", "few", "skewed"], default="base", help="see generate.py"
    )
    ap.add_argument("--feast", action="store_true", help="also run Feast (DuckDB and file stores)")
    ap.add_argument(
        "--feast-stores",
        default="duckdb,file",
        help="which Feast offline stores to run with --feast",
    )
    ap.add_argument("--repeat", type=int, default=2, help="runs per join contender (best kept)")
    ap.add_argument(
        "--timeout", type=float, default=900.0, help="seconds before a Feast run is abandoned"
    )
    ap.add_argument(
        "--profile", action="store_true", help="one extra featureledger run with a time breakdown"
    )
    ap.add_argument("--workdir", help="keep the repo and results here instead of a temp dir")
    ap.add_argument(
        "--reuse-repo",
        action="store_true",
        help="with --workdir: skip init/ingest when WORKDIR/repo exists already",
    )
    ap.add_argument(
        "--only",
        help="comma-separated subset of contenders to run "
        "(featureledger,duckdb-hand,feast-duckdb,feast-file)",
    )
    ap.add_argument("--json", help="write all measurements to this file")
    # internal: child roles
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--repo", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--group", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    roles = {
        "fl-apply": child_fl_apply,
        "fl-ingest": child_fl_ingest,
        "fl-join": child_fl_join,
        "duckdb": child_duckdb,
    }
    if args.role:
        roles[args.role](args)
        return

    from generate import SIZES, generate

    data = generate(args.size, shape=args.shape)
    rows, n_entities, _ = SIZES[args.size]
    meta = json.loads((data / "meta.json").read_text())
    facts = machine_facts()
    vers = versions()
    feast_py = ensure_feast() if args.feast else None
    if feast_py is not None:
        import subprocess

        vers["feast (venv)"] = subprocess.run(
            [
                str(feast_py),
                "-c",
                "import feast, duckdb, pandas, dask; print(feast.__version__, 'duckdb', "
                "duckdb.__version__, 'pandas', pandas.__version__, 'dask', dask.__version__)",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
    print(
        f"machine: {facts.get('cpu')}, nproc={facts.get('nproc')}; "
        + ", ".join(f"{k} {v}" for k, v in vers.items())
    )
    print(
        f"size {args.size}, shape {args.shape}: {rows:,} feature rows per group (x2 groups, "
        f"{meta['duplicate_rows_per_group']:,} duplicates each), {n_entities:,} entity rows; "
        f"Parquet {sum(meta['files'].values()) / 2**20:.0f} MiB"
    )

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out_dir = work / "results"
    out_dir.mkdir(exist_ok=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    report: dict[str, Any] = {
        "size": args.size,
        "shape": args.shape,
        "machine": facts,
        "versions": vers,
        "meta": meta,
        "ingest": {},
        "joins": {},
        "checks": {},
    }
    try:
        # (a) featureledger: init, apply, ingest
        repo = work / "repo"
        reuse = args.reuse_repo and (repo / "featureledger.yaml").exists()
        if repo.exists() and not reuse:
            shutil.rmtree(repo)
        if reuse:
            print(f"reusing the ingested repository {repo} (--reuse-repo)")
        else:
            r = run_child([*me, "--role", "fl-apply", "--repo", str(repo)])
            if r.get("error"):
                raise SystemExit(f"featureledger apply failed: {r['error']}")
            report["apply_s"] = r["seconds"]
        for group in [] if reuse else GROUPS:
            r = run_child(
                [
                    *me,
                    "--role",
                    "fl-ingest",
                    "--repo",
                    str(repo),
                    "--data",
                    str(data),
                    "--group",
                    group,
                ]
            )
            if r.get("error"):
                raise SystemExit(f"featureledger ingest of {group} failed: {r['error']}")
            report["ingest"][group] = r
            print(
                f"featureledger ingest {group}: {r['rows_in']:,} rows in {secs(r['seconds'])} "
                f"= {r['rows_in'] / r['seconds']:,.0f} rows/s, stored {r['rows_stored']:,}, "
                f"peak RSS {gib(r['peak_rss'])}",
                flush=True,
            )

        # the join contenders, interleaved so background noise hits them alike
        contenders: dict[str, list[str]] = {
            "featureledger": [*me, "--role", "fl-join", "--repo", str(repo), "--data", str(data)],
            "duckdb-hand": [*me, "--role", "duckdb", "--data", str(data)],
        }
        if feast_py is not None:
            for store in args.feast_stores.split(","):
                contenders[f"feast-{store}"] = [
                    str(feast_py),
                    str(HERE / "feast_runner.py"),
                    "--data",
                    str(data),
                    "--store",
                    store,
                    "--workdir",
                    str(work / f"feast-{store}"),
                ]
        if args.only:
            wanted = set(args.only.split(",")) | {"featureledger"}
            contenders = {k: v for k, v in contenders.items() if k in wanted}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        given_up: set[str] = set()
        for rep in range(args.repeat):
            for name, cmd in contenders.items():
                if name in given_up:
                    continue
                extra = ["--out", str(out_dir / f"{name}.parquet")] if rep == 0 else []
                timeout = args.timeout if name.startswith("feast") else None
                r = run_child(cmd + extra, timeout=timeout)
                runs[name].append(r)
                if r.get("error"):
                    print(f"  {name} run {rep + 1}: FAILED: {r['error']}", flush=True)
                    given_up.add(name)  # a timeout or crash will not get better
                else:
                    print(
                        f"  {name} run {rep + 1}: {secs(r['seconds'])}, peak RSS "
                        f"{gib(r['peak_rss'])}, rows {r['rows']:,} "
                        f"(load avg {r['load1_before']:.1f})",
                        flush=True,
                    )
        best: dict[str, dict[str, Any]] = {}
        for name, rs in runs.items():
            ok = [r for r in rs if not r.get("error")]
            best[name] = min(ok, key=lambda r: r["seconds"]) if ok else rs[0]
            best[name]["all_seconds"] = [r.get("seconds") for r in rs]
        report["joins"] = best

        if args.profile:
            r = run_child(contenders["featureledger"] + ["--profile"])
            report["profile"] = r.get("profile")
            report["profile_total_s"] = r.get("seconds")
            if r.get("error"):
                print(f"  profile run FAILED: {r['error']}")

        # checks
        ref = out_dir / "featureledger.parquet"
        ents = data / "entities.parquet"
        for name in contenders:
            path = out_dir / f"{name}.parquet"
            if path.exists():
                report["checks"][name] = check_result(path, ref if ref.exists() else None, ents)

        # print the summary
        print()
        print(
            f"== point-in-time join, size {args.size} ({args.shape}): {n_entities:,} entity "
            f"rows x 2 groups of {rows:,} rows (best of {args.repeat}) =="
        )
        fl = best["featureledger"]
        hdr = f"{'contender':<16}{'time':>10}{'peak RSS':>12}{'fl speedup':>12}{'rows ok':>9}"
        print(hdr + f"{'order':>7}  values vs fl (missing rows, differing cells)")
        for name, r in best.items():
            chk = report["checks"].get(name, {})
            if r.get("error"):
                print(f"{name:<16}{'FAILED':>10}  {r['error'][:200]}")
                continue
            ratio = r["seconds"] / fl["seconds"] if not fl.get("error") else None
            vals = (
                "ref"
                if name == "featureledger"
                else "agree"
                if chk.get("values_agree")
                else f"{chk.get('missing_reference_rows', '?')} rows, "
                f"{chk.get('cells_differing', '?')} cells"
                if chk
                else "-"
            )
            print(
                f"{name:<16}{secs(r['seconds']):>10}{gib(r['peak_rss']):>12}"
                f"{'' if ratio is None else f'{ratio:.2f}x':>12}"
                f"{chk.get('same_rows', '-')!s:>9}{chk.get('entity_order', '-')!s:>7}"
                f"  {vals}"
            )
        for name, chk in report["checks"].items():
            print(
                f"  check {name}: rows {chk['rows']:,}/{chk['entity_rows']:,}, with user_stats "
                f"features {chk['rows_with_stats']:,}, with user_txn features "
                f"{chk['rows_with_txn']:,}"
                + (
                    f"; vs featureledger: {chk['missing_reference_rows']:,} entity rows missing, "
                    f"{chk['cells_differing']:,} cells differ in rows both have"
                    + (
                        f" {chk['cells_differing_by_column']}"
                        if chk.get("cells_differing_by_column")
                        else ""
                    )
                    if "missing_reference_rows" in chk
                    else ""
                )
            )
        if report.get("profile"):
            total = secs(report["profile_total_s"])
            print(f"  featureledger time breakdown (profile run, {total}):")
            for k, v in sorted(report["profile"].items(), key=lambda kv: -kv[1]):
                print(f"    {k:<44}{v:8.3f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
