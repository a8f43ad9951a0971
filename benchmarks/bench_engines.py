"""Offline engines side by side: the point-in-time join on DuckDB, Daft (native runner)
and Daft on a local Ray cluster, over the same Delta tables in the same run.

    python benchmarks/bench_engines.py --size m l [xl] [--engines duckdb daft daft-ray]

Data: generate.py's groups (user_stats, user_txn: rows per group, ~1% restated rows) and
entity frame, ingested once per size into Delta tables by the project's writer (DuckDB),
so every engine joins the same pinned snapshots. Size xl is bench_xl.py's shape (50M rows
per group, 5M entity rows). Each engine runs in its own child process, timed around
``pit_join(...).read_all()`` (the whole result on the driver, as `training_data` without
``output=`` holds it); peak memory is the child's VmHWM and, on Ray, the largest peak
RSS among the cluster's processes (raylet, workers, GCS: sampled every 0.2 s). Results are
compared cell for cell with DuckDB's. Cost growth is reported m -> l -> xl, and a
1-billion-row estimate on 32 nodes is derived from the measured per-core throughput.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, gib, machine_facts, run_child, secs

GROUPS = {  # name -> (features, ttl days), as bench_pit.py
    "user_stats": ([f"f{i}" for i in range(8)] + ["c0", "s0"], 30),
    "user_txn": ([f"g{i}" for i in range(4)], 7),
}
XL = (50_000_000, 5_000_000, 500_000)  # bench_xl.py's shape
#: cores of the assumed cluster node for the 1-billion-row estimate
NODE_CORES = 16
NODES = 32


# -- data -----------------------------------------------------------------------------------------
def _group(name: str) -> Any:
    from featureledger.definitions import Entity, FeatureGroup, Field

    features, ttl_days = GROUPS[name]
    types = {"c0": "int64", "s0": "string"}
    kind = "float32" if name == "user_txn" else "float64"
    return FeatureGroup(
        name,
        Entity("user", join_keys=["user_id"]),
        features=[Field(f, types.get(f, kind)) for f in features],
        event_time="event_timestamp",
        created_time="created_timestamp",
        ttl=timedelta(days=ttl_days),
    )


def prepare(size: str, work: Path) -> Path:
    """Delta tables of both groups under ``work/size`` (once), written by the project's
    writer with the DuckDB engine; returns the folder."""
    import generate

    from featureledger.hashing import ContentHash
    from featureledger.offline import DeltaGroupTable
    from featureledger.offline.duckdb import DuckDBEngine
    from featureledger.versioning.writer import write_batch

    if size == "xl":
        generate.SIZES["xl"] = XL
    data = generate.generate(size)
    out = work / size
    if (out / "ready").exists():
        return out
    engine = DuckDBEngine(temp_directory=work / "spill")
    for name in GROUPS:
        fg = _group(name)
        table = DeltaGroupTable(out / name)
        version = table.create(fg.arrow_schema, "create")
        content = ContentHash()
        t0 = time.perf_counter()
        total = 0
        for batch in _slices(data / f"{name}.parquet", fg.arrow_schema.names):
            done = write_batch(
                table, engine, fg, batch.cast(fg.arrow_schema), "upsert",
                parent_version=version, parent_content=content, run_id="bench",
                where=f"{name} {size}",
            )  # fmt: skip
            assert done.version is not None
            version, content = done.version, content + done.added - done.removed
            total += batch.num_rows
        print(f"{size}: ingested {name} ({total:,} rows) in {time.perf_counter() - t0:.1f} s")
    (out / "entities.parquet").write_bytes((data / "entities.parquet").read_bytes())
    (out / "ready").write_text("")
    return out


#: rows per ingest batch: a 50M-row group in one write_batch peaked above 20 GiB (xl)
INGEST_ROWS = 5_000_000


def _slices(path: Path, columns: list[str]) -> Any:
    """The file's rows in batches of about `INGEST_ROWS`, each a range of user ids: the
    keys of the batches are disjoint, so upserting them one by one stores what one
    upsert of the whole file would (restated rows meet in the same batch)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    if rows <= INGEST_ROWS:
        yield pq.read_table(path, columns=columns)
        return
    users = pq.read_table(path, columns=["user_id"]).column("user_id")
    low, high = pc.min(users).as_py(), pc.max(users).as_py() + 1
    del users
    parts = -(-rows // INGEST_ROWS)
    edges = [low + (high - low) * k // parts for k in range(parts + 1)]
    dataset = pads.dataset(path)
    for a, b in itertools.pairwise(edges):
        key = pads.field("user_id")
        yield dataset.to_table(columns=columns, filter=(key >= a) & (key < b))


def vm_hwm_bytes() -> int:
    """This process's peak RSS since exec (VmHWM). Not ru_maxrss: Linux carries that over
    from the forked parent's size, so a child of a big parent would report the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# -- children -------------------------------------------------------------------------------------
class RaySampler:
    """Peak RSS of every process of the local Ray cluster, sampled from /proc."""

    NAMES = ("ray::", "raylet", "gcs_server", "default_worker", "dashboard", "runtime_env")

    def __init__(self) -> None:
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        me = os.getpid()
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or int(entry.name) == me:
                    continue
                try:
                    cmd = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    if not any(n in cmd for n in self.NAMES) or "/tmp/flbench-ray" not in (
                        cmd + Path(entry.path, "environ").read_bytes().decode(errors="ignore")
                    ):
                        continue
                    rss = int(Path(entry.path, "statm").read_text().split()[1]) * page
                except (OSError, ValueError, IndexError):
                    continue
                pid = int(entry.name)
                self.peak[pid] = max(self.peak.get(pid, 0), rss)
            self._stop.wait(0.2)

    def __enter__(self) -> RaySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def child(engine_name: str, folder: Path, result: Path) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from featureledger.offline import ROW_COLUMN, DeltaGroupTable, PitSource

    sampler = None
    if engine_name == "duckdb":
        from featureledger.offline.duckdb import DuckDBEngine

        engine: Any = DuckDBEngine(temp_directory=folder.parent / "spill")
    else:
        from featureledger.offline.daft import DaftEngine

        address = None
        if engine_name == "daft-ray":
            import ray

            temp = tempfile.mkdtemp(prefix="flbench-ray-", dir="/tmp")
            os.environ["FLBENCH_RAY"] = temp  # marks the cluster's processes for the sampler
            for attempt in range(3):  # Ray waits a fixed 30 s for its raylet: retry on a busy box
                try:
                    ray.init(
                        num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False
                    )
                    break
                except Exception:
                    ray.shutdown()
                    if attempt == 2:
                        raise
            address = "local"
            sampler = RaySampler()
        engine = DaftEngine(ray_address=address)
    entities = pq.read_table(folder / "entities.parquet")
    entities = entities.append_column(
        ROW_COLUMN, pa.array(np.arange(entities.num_rows, dtype=np.int64))
    )
    sources = []
    for name, (features, _) in GROUPS.items():
        fg = _group(name)
        table = DeltaGroupTable(folder / name)
        files = table.files(table.latest_version())
        ttl = fg.ttl // timedelta(microseconds=1)
        sources.append(
            PitSource(
                files,
                fg.arrow_schema,
                ["user_id"],
                ["user_id"],
                "event_timestamp",
                ttl,
                [(f, f) for f in features],
            )
        )
    if sampler is not None:
        sampler.__enter__()
    t0 = time.perf_counter()
    out = engine.pit_join(entities, "event_timestamp", sources).read_all()
    seconds = time.perf_counter() - t0
    if sampler is not None:
        sampler.__exit__()
    pq.write_table(out, result)
    ray_peaks = sorted(sampler.peak.values()) if sampler else []
    emit(
        {
            "ok": True,
            "seconds": seconds,
            "rows": out.num_rows,
            "peak_rss": vm_hwm_bytes(),
            "ray_processes": len(ray_peaks),
            "ray_max_peak_rss": ray_peaks[-1] if ray_peaks else None,
            "ray_sum_peak_rss": sum(ray_peaks) if ray_peaks else None,
        }
    )


# -- comparing ------------------------------------------------------------------------------------
def differing_cells(a: Any, b: Any) -> int:
    """Cells of ``b`` that differ from ``a`` (NULL equals NULL), same shape assumed."""
    import pyarrow.compute as pc

    if a.num_rows != b.num_rows or a.schema.names != b.schema.names:
        return -1
    b = b.cast(a.schema)
    total = 0
    for name in a.schema.names:
        x, y = a.column(name), b.column(name)
        same = pc.or_kleene(
            pc.and_kleene(pc.is_null(x), pc.is_null(y)), pc.fill_null(pc.equal(x, y), False)
        )
        total += a.num_rows - pc.sum(pc.cast(same, "int64")).as_py()
    return total


def rows_per_size(size: str) -> tuple[int, int]:
    import generate

    rows, entities, _ = XL if size == "xl" else generate.SIZES[size]
    return rows, entities


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", nargs="+", choices=["s", "m", "l", "xl"], default=["m", "l"])
    ap.add_argument("--engines", nargs="+", default=["duckdb", "daft", "daft-ray"])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--child", nargs=3, metavar=("ENGINE", "FOLDER", "RESULT"))
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    import pyarrow.parquet as pq

    work = Path(args.workdir or tempfile.mkdtemp(prefix="fl-engines-"))
    facts = machine_facts()
    results: dict[str, Any] = {"machine": facts, "load1_start": os.getloadavg()[0], "runs": []}
    print(f"machine: {facts.get('cpu')}, {facts.get('nproc')} cores; load {os.getloadavg()}")
    for size in args.size:
        folder = prepare(size, work)
        baseline = None
        for name in args.engines:
            result_path = work / f"{size}-{name}.parquet"
            r = run_child(
                [sys.executable, __file__, "--child", name, str(folder), str(result_path)],
                timeout=args.timeout,
            )
            r.update(size=size, engine=name)
            if "error" not in r:
                got = pq.read_table(result_path)
                if baseline is None and name == "duckdb":
                    baseline = got
                r["differing_cells"] = None if baseline is None else differing_cells(baseline, got)
                r["cells"] = got.num_rows * got.num_columns
            results["runs"].append(r)
            ray = (
                f", Ray processes peak {gib(r.get('ray_max_peak_rss'))} max / "
                f"{gib(r.get('ray_sum_peak_rss'))} summed over {r.get('ray_processes')}"
                if r.get("ray_processes")
                else ""
            )
            print(
                f"{size} {name:9s}: {secs(r.get('seconds'))}, {r.get('rows', 0):,} rows, "
                f"driver peak {gib(r.get('peak_rss'))}{ray}, cells differing from duckdb: "
                f"{r.get('differing_cells')} of {r.get('cells')}, load {r['load1_before']:.1f}"
                + (f"  ERROR {r['error']}" if "error" in r else "")
            )
    ok = [r for r in results["runs"] if "error" not in r]
    print("\ngrowth (time ratio against the smallest size run, rows ratio in brackets):")
    for name in args.engines:
        mine = [r for r in ok if r["engine"] == name]
        if len(mine) > 1:
            first = mine[0]
            parts = [
                f"{r['size']} x{r['seconds'] / first['seconds']:.1f} "
                f"[x{rows_per_size(r['size'])[0] / rows_per_size(first['size'])[0]:.0f}]"
                for r in mine[1:]
            ]
            print(f"  {name}: {first['size']} 1.0, " + ", ".join(parts))
    print("\nagainst duckdb (same size, same run):")
    for r in ok:
        base = next((b for b in ok if b["size"] == r["size"] and b["engine"] == "duckdb"), None)
        if base and r is not base:
            print(f"  {r['size']} {r['engine']}: x{r['seconds'] / base['seconds']:.2f} the time")
    ray = [r for r in ok if r["engine"] == "daft-ray"]
    if ray:
        big = max(ray, key=lambda r: rows_per_size(r["size"])[0])
        rows, ents = rows_per_size(big["size"])
        per_core = (2 * rows + ents) / big["seconds"] / 2  # 2 cores on this machine
        target = 2 * 1_000_000_000 + 100_000_000  # two 1B-row groups, 100M entity rows
        estimate = target / (per_core * NODES * NODE_CORES)
        results["estimate"] = {"per_core_rows_s": per_core, "seconds": estimate}
        print(
            f"\n1-billion-row estimate: Daft on Ray joined {2 * rows + ents:,} input rows "
            f"({big['size']}) at {per_core:,.0f} rows/s per core; two 1B-row groups and 100M "
            f"entity rows on {NODES} nodes x {NODE_CORES} cores, scaling linearly: "
            f"~{estimate:.0f} s (shuffle over the network not measured here)"
        )
    (work / "engines.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {work / 'engines.json'}")


if __name__ == "__main__":
    main()
