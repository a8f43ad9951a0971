"""Online store benchmark: materialization throughput and in-process read latency.

    python benchmarks/bench_online.py [--rows 1000000] [--reads 20000] [--repeat 3]
                                      [--redis-url URL] [--no-redis] [--json PATH]

Data: ``--rows`` entities (int64 key), one event time, 14 float64 features (the issue's
"1 entity x 14 features"), already in memory as an Arrow table.

Writes (rows/s, best of ``--repeat``): the whole table written in one
``OnlineStore.write`` call, as materialization does, into a fresh store ("fresh") and
again with newer event times and new values over the full store ("overwrite", a
re-materialization); for SQLite (default, and ``synchronous="off"``) and Redis.
Baseline in the same run, "naive sqlite": one row per entity with 14 REAL columns,
``executemany`` of Python tuples (what a straightforward implementation does; its values
are not bit-exact: SQLite turns NaN into NULL).

Reads (microseconds, p50/p99 over ``--reads`` requests, after a warm-up): ``read`` of 1
random entity x 14 features and of 100 random entities x 14 features, including the
Arrow result. Baseline, "naive sqlite": one prepared ``SELECT ... WHERE id = ?`` per
entity on the naive table, building the same Arrow table from the rows.

Redis: ``--redis-url``, else a redis-server started here on a free port (no persistence)
when the binary exists (scripts/install-services.sh installs it), else skipped.

Targets (issue 5, 2-core machine): >= 1M rows/s into SQLite; in-process p99 <= 100 us
for 1 entity and <= 2 ms for 100 entities. The load average is printed: other processes
on the machine show up in the p99.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_facts, time_calls

from featureledger.online import OnlineStore, RedisOnlineStore, SQLiteOnlineStore

FEATURES = [f"f{i:02d}" for i in range(14)]
T0 = datetime(2025, 6, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
TTL = timedelta(days=30)


def make_table(rows: int, event_time: datetime, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {
        "user_id": pa.array(np.arange(rows, dtype=np.int64)),
        "event_timestamp": pa.array(
            np.full(rows, int(event_time.timestamp() * 1_000_000)), pa.int64()
        ).view(TS),
    }
    for name in FEATURES:
        columns[name] = pa.array(rng.standard_normal(rows))
    return pa.table(columns)


# -- writes ----------------------------------------------------------------------------------------
def time_write(store: OnlineStore, table: pa.Table, version: str) -> float:
    start = time.perf_counter()
    written = store.write(
        "user_stats",
        table,
        ["user_id"],
        event_time_column="event_timestamp",
        source_version=version,
    )
    elapsed = time.perf_counter() - start
    assert written == table.num_rows, (written, table.num_rows)
    return elapsed


class NaiveSQLite:
    """The baseline: one row per entity, 14 REAL columns, Python tuples."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path, isolation_level=None)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        cols = ", ".join(f"{f} REAL" for f in FEATURES)
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS user_stats (user_id INTEGER PRIMARY KEY, "
            f"ts INTEGER, version TEXT, {cols})"
        )
        marks = ", ".join("?" for _ in range(len(FEATURES) + 3))
        self.insert = f"INSERT OR REPLACE INTO user_stats VALUES ({marks})"
        self.select = f"SELECT ts, version, {', '.join(FEATURES)} FROM user_stats WHERE user_id = ?"
        self.schema = pa.schema(
            [(f, pa.float64()) for f in FEATURES]
            + [("__fl_event_time", TS), ("__fl_source_version", pa.string())]
        )

    def write(self, table: pa.Table, version: str) -> float:
        start = time.perf_counter()
        for batch in table.to_batches(max_chunksize=65_536):
            data = batch.to_pydict()
            ts = batch.column("event_timestamp").view(pa.int64()).to_pylist()
            rows = zip(
                data["user_id"],
                ts,
                [version] * batch.num_rows,
                *(data[f] for f in FEATURES),
                strict=True,
            )
            self.con.execute("BEGIN")
            self.con.executemany(self.insert, rows)
            self.con.execute("COMMIT")
        return time.perf_counter() - start

    def read(self, keys: pa.Table) -> pa.Table:
        rows = [self.con.execute(self.select, (k,)).fetchone() for k in keys.column(0).to_pylist()]
        cols: list[list[Any]] = [[] for _ in range(len(FEATURES) + 2)]
        for row in rows:
            if row is None:
                for c in cols:
                    c.append(None)
                continue
            for i in range(len(FEATURES)):
                cols[i].append(row[2 + i])
            cols[-2].append(row[0])
            cols[-1].append(row[1])
        arrays = [pa.array(cols[i], pa.float64()) for i in range(len(FEATURES))]
        arrays.append(pa.array(cols[-2], pa.int64()).view(TS))
        arrays.append(pa.array(cols[-1], pa.string()))
        return pa.Table.from_arrays(arrays, schema=self.schema)


# -- reads -----------------------------------------------------------------------------------------
def latencies(read: Callable[[pa.Table], object], requests: list[pa.Table], warmup: int) -> dict:
    return time_calls(read, requests, warmup)


def requests(rows: int, size: int, count: int, seed: int) -> list[pa.Table]:
    rng = np.random.default_rng(seed)
    return [
        pa.table({"user_id": pa.array(rng.choice(rows, size, replace=False), pa.int64())})
        for _ in range(count)
    ]


def store_reader(store: OnlineStore) -> Callable[[pa.Table], pa.Table]:
    def read(keys: pa.Table) -> pa.Table:
        return store.read("user_stats", keys, FEATURES, now=T0, ttl=TTL)

    return read


# -- redis -----------------------------------------------------------------------------------------
@contextmanager
def redis_server(url: str | None, disabled: bool) -> Iterator[str | None]:
    if disabled:
        yield None
        return
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server not found (run scripts/install-services.sh); Redis skipped")
        yield None
        return
    workdir = Path(tempfile.mkdtemp(prefix="fl-bench-redis-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


# -- main ------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reads", type=int, default=20_000, help="requests per latency case")
    parser.add_argument("--repeat", type=int, default=3, help="write runs per case (best kept)")
    parser.add_argument("--redis-url")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    facts = machine_facts()
    print(f"machine: {facts.get('cpu', '?')}, {facts['nproc']} cores, python {facts['python']}")
    print(f"load average before: {os.getloadavg()}")
    first = make_table(args.rows, T0 - timedelta(hours=2), seed=1)
    second = make_table(args.rows, T0 - timedelta(hours=1), seed=2)
    results: dict[str, Any] = {
        "rows": args.rows,
        "features": len(FEATURES),
        "write": {},
        "read": {},
        "machine": facts,
    }
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fl-bench-online-"))
    work.mkdir(parents=True, exist_ok=True)
    small = requests(args.rows, 1, args.reads, seed=3)
    hundred = requests(args.rows, 100, max(args.reads // 10, 200), seed=4)

    def record(backend: str, fresh: list[float], over: list[float]) -> None:
        results["write"][backend] = {
            "fresh_rows_per_s": args.rows / min(fresh),
            "overwrite_rows_per_s": args.rows / min(over),
        }

    try:
        # SQLite
        fresh, over = [], []
        for i in range(args.repeat):
            path = work / f"sqlite-{i}" / "online.db"
            shutil.rmtree(path.parent, ignore_errors=True)
            store = SQLiteOnlineStore(path)
            fresh.append(time_write(store, first, "user_stats@v1#1"))
            over.append(time_write(store, second, "user_stats@v1#2"))
            if i < args.repeat - 1:
                store.close()
        record("sqlite", fresh, over)
        sqlite_store = store

        # the same with synchronous="off" (no fsync; not crash-safe for the file)
        fresh, over = [], []
        for i in range(args.repeat):
            path = work / f"sqlite-off-{i}" / "online.db"
            shutil.rmtree(path.parent, ignore_errors=True)
            off = SQLiteOnlineStore(path, synchronous="off")
            fresh.append(time_write(off, first, "user_stats@v1#1"))
            over.append(time_write(off, second, "user_stats@v1#2"))
            off.close()
            shutil.rmtree(path.parent, ignore_errors=True)
        record("sqlite sync=off", fresh, over)

        # baseline
        naive_fresh, naive_over = [], []
        for i in range(max(1, args.repeat - 1)):
            path = work / f"naive-{i}.db"
            path.unlink(missing_ok=True)
            naive = NaiveSQLite(path)
            naive_fresh.append(naive.write(first, "v1"))
            naive_over.append(naive.write(second, "v2"))
        record("naive sqlite", naive_fresh, naive_over)

        with redis_server(args.redis_url, args.no_redis) as url:
            redis_store = None
            if url:
                fresh, over = [], []
                for i in range(args.repeat):
                    redis_store = RedisOnlineStore(url, prefix=f"bench{i}")
                    redis_store.delete_table("user_stats")
                    fresh.append(time_write(redis_store, first, "user_stats@v1#1"))
                    over.append(time_write(redis_store, second, "user_stats@v1#2"))
                    if i < args.repeat - 1:
                        redis_store._r.flushdb()
                record("redis", fresh, over)

            readers: list[tuple[str, Callable[[pa.Table], object]]] = [
                ("sqlite", store_reader(sqlite_store)),
                ("naive sqlite", naive.read),
            ]
            if redis_store is not None:
                readers.append(("redis", store_reader(redis_store)))
            # the same answers from every store
            check = small[0]
            want = store_reader(sqlite_store)(check)
            for name, read in readers:
                got = read(check)
                assert got.select(FEATURES).equals(want.select(FEATURES)), name  # type: ignore[attr-defined]
            for name, read in readers:
                results["read"][name] = {
                    "1 entity x 14": latencies(read, small, warmup=min(2000, len(small))),
                    "100 entities x 14": latencies(read, hundred, warmup=min(200, len(hundred))),
                }
            gc.collect()
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    print(f"load average after: {os.getloadavg()}")
    print(
        f"\nmaterialization-style writes, {args.rows:,} rows x {len(FEATURES)} float64 "
        f"(best of {args.repeat})"
    )
    print(f"  {'store':14s} {'fresh rows/s':>14s} {'overwrite rows/s':>18s}")
    for name, r in results["write"].items():
        print(f"  {name:14s} {r['fresh_rows_per_s']:>14,.0f} {r['overwrite_rows_per_s']:>18,.0f}")
    print("\nin-process reads (us)")
    print(f"  {'store':14s} {'case':18s} {'p50':>8s} {'p99':>8s} {'p99.9':>8s}")
    for name, cases in results["read"].items():
        for case, r in cases.items():
            print(
                f"  {name:14s} {case:18s} {r['p50_us']:8.1f} {r['p99_us']:8.1f} {r['p999_us']:8.1f}"
            )
    sq, base = results["read"]["sqlite"], results["read"]["naive sqlite"]
    print("\nagainst the targets and the baseline:")
    print(
        f"  sqlite write: {results['write']['sqlite']['fresh_rows_per_s']:,.0f} rows/s "
        f"(target >= 1,000,000; naive baseline "
        f"{results['write']['naive sqlite']['fresh_rows_per_s']:,.0f})"
    )
    for case, target in (("1 entity x 14", 100.0), ("100 entities x 14", 2000.0)):
        print(
            f"  sqlite {case}: p99 {sq[case]['p99_us']:.1f} us (target <= {target:.0f}); "
            f"p50 {base[case]['p50_us'] / sq[case]['p50_us']:.1f}x, "
            f"p99 {base[case]['p99_us'] / sq[case]['p99_us']:.1f}x better than naive"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
