"""Online serving, featureledger beside Feast on the same data in the same run (issue 5).

    python benchmarks/bench_online_vs_feast.py [--entities 100000] [--reads 3000]
        [--reads-100 1000] [--requests 5000] [--no-http] [--json PATH]
        [--materialize-repeat 3] [--feast-max-requests 0] [--workdir DIR]

Needs benchmarks/.venv-feast (benchmarks/setup_feast.sh); Feast never enters this venv.

Data: ``--entities`` rows, one per entity: ``user_id`` (int64), ``event_timestamp`` (UTC,
1-2 hours old) and 14 float64 features ``f00``..``f13``, written once as Parquet. Both
systems read that file: featureledger ingests it into an online feature group (TTL 30 days)
with a view over it; Feast (benchmarks/feast_online_runner.py, in its own venv and process)
uses it as the FileSource of a FeatureView (TTL 30 days) on the DuckDB offline store.
Both serve from SQLite.

- Materialization, source rows/s: featureledger ``FeatureStore.materialize`` end to end
  (Delta -> latest row per entity -> SQLite; the median of ``--materialize-repeat`` runs,
  each the first materialization of a freshly built repository); Feast
  ``FeatureStore.materialize(start, end)`` over a window holding every row, into a fresh
  online store (one run: it takes seconds, long enough to time).
- In-process reads, microseconds, p50/p99 over ``--reads`` (1 entity) and ``--reads-100``
  (100 entities) calls after a warm-up, the same random keys on both sides, entity rows
  given as a list of dicts: featureledger ``store.get_online_features(view,
  rows).to_dict()`` (registry resolution included as a user calls it: the resolved view is
  reused for 5 s, then resolved again); Feast ``store.get_online_features(features=[...],
  entity_rows=rows).to_dict()``.
- HTTP on loopback, 1 random entity per request, ``--requests`` per phase at 1 and then 8
  concurrent keep-alive clients (threads of this process, with the raw-socket client of
  bench_http.py for both servers), after 200 warm-up requests and, before each phase,
  50 more per client at that phase's concurrency: featureledger ``featureledger
  serve`` (one uvicorn worker, reader token) ``POST /features/{view}``; Feast ``feast serve``
  (gunicorn with one uvicorn worker, its default Python feature server) ``POST
  /get-online-features``. Both servers run at once, phases alternate between them.
  ``--feast-max-requests`` is passed to ``feast serve --max-requests`` (Feast's default
  1000 recycles the worker every ~1000 requests; 0, the default here, never does, which
  favours Feast).

Before timing, both stores must return the same values, cell for cell, for a sample of
entities (and for two unknown keys: all NULL); over HTTP too. Prints machine facts, load
averages and a table: metric, featureledger, Feast, how many times better featureledger
is, target, met.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_http import RawClient, _free_port, http_phase, start_server, wait_until_healthy
from common import FEAST_VENV, HERE, machine_facts, request_keys, run_child, time_calls

FEATURES = [f"f{i:02d}" for i in range(14)]
VIEW = "user_features"
FEAST_FEATURES = [f"user_stats:{f}" for f in FEATURES]


def make_data(entities: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    ages = rng.integers(3_600_000_000, 7_200_000_000, entities)  # 1-2 hours old
    columns: dict[str, pa.Array] = {
        "user_id": pa.array(np.arange(entities, dtype=np.int64)),
        "event_timestamp": pa.array(now_us - ages, pa.int64()).view(pa.timestamp("us", "UTC")),
    }
    for name in FEATURES:
        columns[name] = pa.array(rng.standard_normal(entities))
    return pa.table(columns)


# -- featureledger ---------------------------------------------------------------------------------
def run_featureledger(
    root: Path,
    table: pa.Table,
    one: list[list[dict[str, int]]],
    hundred: list[list[dict[str, int]]],
    check_keys: list[int],
    repeat: int,
) -> dict[str, Any]:
    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    def build(at: Path) -> tuple[FeatureStore, float]:
        store = FeatureStore.init(at)
        user = Entity("user", join_keys=["user_id"])
        group = FeatureGroup(
            "user_stats",
            user,
            features=[Field(f, "float64") for f in FEATURES],
            ttl=timedelta(days=30),
            online=True,
        )
        store.apply([user, group, FeatureView(VIEW, [group])])
        t0 = time.perf_counter()
        store.ingest("user_stats", table)
        ingest_s = time.perf_counter() - t0
        # the ingest's statistics are computed on a background thread: let them finish so
        # they do not share the cores with the materialization and the reads timed below
        store.wait_for_stats()
        return store, ingest_s

    # each run materializes a new repository's first data version into an empty store
    # (materializing an unchanged version again does nothing)
    materialize_s = []
    for i in range(max(1, repeat)):
        at = root if i == repeat - 1 else root.with_name(f"{root.name}-{i}")
        store, ingest_s = build(at)
        t0 = time.perf_counter()
        done = store.materialize()
        materialize_s.append(time.perf_counter() - t0)
        assert done[0].rows == table.num_rows and done[0].mode == "full", done
        if at != root:
            store.online_store().close()
            shutil.rmtree(at, ignore_errors=True)
    median = sorted(materialize_s)[len(materialize_s) // 2]

    def read(entity_rows: list[dict[str, int]]) -> dict[str, list[Any]]:
        return store.get_online_features(VIEW, entity_rows).to_dict()

    reads = {
        "1 entity x 14": time_calls(read, one, warmup=min(500, len(one))),
        "100 entities x 14": time_calls(read, hundred, warmup=min(100, len(hundred))),
    }
    check = read([{"user_id": k} for k in check_keys])
    # one-entity calls take another path (no Arrow): they must give the batch's values
    singles: dict[str, list[Any]] = {c: [] for c in check}
    for k in check_keys:
        for column, values in read([{"user_id": k}]).items():
            singles[column] += values
    one_entity_diffs = same_cells(singles, check)
    token = store.create_token("reader", [VIEW])
    return {
        "ingest_s": ingest_s,
        "materialize_s": materialize_s,
        "materialize_rows_per_s": table.num_rows / median,
        "read": reads,
        "check": check,
        "one_entity_diffs": one_entity_diffs,
        "token": token,
    }


# -- checks ----------------------------------------------------------------------------------------
def same_cells(ours: dict[str, list[Any]], theirs: dict[str, list[Any]]) -> list[str]:
    """The cells that differ (column, row, ours, theirs), compared by column name."""
    diffs = []
    for column in ["user_id", *FEATURES]:
        a, b = ours.get(column), theirs.get(column)
        if a is None or b is None or len(a) != len(b):
            diffs.append(f"{column}: column missing or of another length")
            continue
        for row, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y and not (isinstance(x, float) and isinstance(y, float) and x != x and y != y):
                diffs.append(f"{column}[{row}]: featureledger {x!r}, Feast {y!r}")
    return diffs


def http_rows_featureledger(client: RawClient, keys: list[int]) -> dict[str, list[Any]]:
    body = json.dumps({"entities": [{"user_id": k} for k in keys]}).encode()
    status, raw = client.request(f"/features/{VIEW}", body)
    assert status == 200, raw[:500]
    rows = json.loads(raw)["features"]
    return {c: [r.get(c) for r in rows] for c in ["user_id", *FEATURES]}


def http_rows_feast(client: RawClient, keys: list[int]) -> dict[str, list[Any]]:
    body = json.dumps({"features": FEAST_FEATURES, "entities": {"user_id": keys}}).encode()
    status, raw = client.request("/get-online-features", body)
    assert status == 200, raw[:500]
    got = json.loads(raw)
    names = got["metadata"]["feature_names"]
    return {name: result["values"] for name, result in zip(names, got["results"], strict=True)}


# -- HTTP ------------------------------------------------------------------------------------------
def start_feast_server(repo: Path, max_requests: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(FEAST_VENV / "bin" / "feast"),
            "-c",
            str(repo),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--max-requests",
            str(max_requests),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(proc, url, timeout=120)
    return proc, url


def run_http(
    fl_root: Path,
    token: str,
    feast_repo: Path,
    entities: int,
    requests: int,
    max_seconds: float,
    feast_max_requests: int,
    check_keys: list[int],
) -> dict[str, Any]:
    def fl_body(rnd: random.Random) -> bytes:
        return json.dumps({"entities": [{"user_id": rnd.randrange(entities)}]}).encode()

    def feast_body(rnd: random.Random) -> bytes:
        keys = [rnd.randrange(entities)]
        return json.dumps({"features": FEAST_FEATURES, "entities": {"user_id": keys}}).encode()

    servers: list[subprocess.Popen[bytes]] = []
    try:
        fl_proc, fl_url = start_server(fl_root)
        servers.append(fl_proc)
        feast_proc, feast_url = start_feast_server(feast_repo, feast_max_requests)
        servers.append(feast_proc)
        sides = {
            "featureledger": (fl_url, f"/features/{VIEW}", fl_body, token),
            "feast": (feast_url, "/get-online-features", feast_body, ""),
        }
        # the same values over HTTP
        fl_client, feast_client = RawClient(fl_url, token), RawClient(feast_url)
        diffs = same_cells(
            http_rows_featureledger(fl_client, check_keys),
            http_rows_feast(feast_client, check_keys),
        )
        for k in check_keys:  # and one entity per request, as timed below
            diffs += same_cells(
                http_rows_featureledger(fl_client, [k]), http_rows_feast(feast_client, [k])
            )
        fl_client.close()
        feast_client.close()
        out: dict[str, Any] = {"check_diffs": diffs[:20], "check_cells_differing": len(diffs)}
        for url, path, body, tok in sides.values():  # warm-up
            http_phase(url, path, body, 200, 1, max_seconds, token=tok)
        for clients in (1, 8):
            for name, (url, path, body, tok) in sides.items():
                # warm this phase's connections and the server's 5-second caches
                http_phase(url, path, body, 50 * clients, clients, max_seconds, token=tok)
                load = os.getloadavg()[0]
                r = http_phase(url, path, body, requests, clients, max_seconds, token=tok)
                r["load1_before"] = load
                out.setdefault(name, {})[f"c={clients}"] = r
        return out
    finally:
        for proc in servers:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- report ----------------------------------------------------------------------------------------
def table_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per printed row; ``better`` is how many times better featureledger is."""
    fl, fe = results["featureledger"], results["feast"]
    rows: list[dict[str, Any]] = []

    def add(
        metric: str,
        ours: float,
        theirs: float,
        unit: str,
        higher_is_better: bool,
        limit: float | None = None,
        five_x: bool = False,
    ) -> None:
        better = ours / theirs if higher_is_better else theirs / ours
        target, met = "", None
        if limit is not None:
            within = ours >= limit if higher_is_better else ours <= limit
            sign = ">=" if higher_is_better else "<="
            target = f"{sign} {fmt(limit, unit)}" + (", >= 5x Feast" if five_x else "")
            met = within and (better >= 5 if five_x else True)
        rows.append(
            {
                "metric": metric,
                "unit": unit,
                "featureledger": ours,
                "feast": theirs,
                "better": better,
                "target": target,
                "met": met,
            }
        )

    add(
        "materialization, source rows/s",
        fl["materialize_rows_per_s"],
        fe["materialize_rows_per_s"],
        "rows/s",
        True,
        1_000_000,
    )
    for case, limit in (("1 entity x 14", 100.0), ("100 entities x 14", 2000.0)):
        a, b = fl["read"][case], fe["read"][case]
        add(f"in-process {case}, p50", a["p50_us"], b["p50_us"], "us", False)
        add(f"in-process {case}, p99", a["p99_us"], b["p99_us"], "us", False, limit, True)
    http = results.get("http")
    if http:
        for clients in ("c=1", "c=8"):
            a, b = http["featureledger"][clients], http["feast"][clients]
            add(f"HTTP {clients}, p50", a["p50_ms"] * 1000, b["p50_ms"] * 1000, "us", False)
            limit = 2000.0 if clients == "c=1" else None
            add(
                f"HTTP {clients}, p99",
                a["p99_ms"] * 1000,
                b["p99_ms"] * 1000,
                "us",
                False,
                limit,
                True,
            )
            add(f"HTTP {clients}, requests/s", a["rps"], b["rps"], "req/s", True)
    return rows


def fmt(value: float, unit: str) -> str:
    if unit == "us":
        return f"{value:,.0f} us" if value < 1000 else f"{value / 1000:,.2f} ms"
    return f"{value:,.0f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'metric':36s} {'featureledger':>14s} {'Feast':>12s} {'better':>8s}  {'target':30s} met"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(
            f"{r['metric']:36s} {fmt(r['featureledger'], r['unit']):>14s} "
            f"{fmt(r['feast'], r['unit']):>12s} {r['better']:>7.1f}x  {r['target']:30s} {met}"
        )


# -- main ------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--reads", type=int, default=3000, help="in-process calls, 1 entity")
    parser.add_argument("--reads-100", type=int, default=1000, help="in-process calls, 100")
    parser.add_argument("--requests", type=int, default=5000, help="HTTP requests per phase")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="bound per HTTP phase")
    parser.add_argument("--materialize-repeat", type=int, default=3)
    parser.add_argument("--feast-max-requests", type=int, default=0)
    parser.add_argument("--check", type=int, default=200, help="entities compared cell by cell")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep the repositories here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    feast_python = FEAST_VENV / "bin" / "python"
    if not feast_python.exists():
        raise SystemExit(f"{feast_python} is missing; run benchmarks/setup_feast.sh first")
    facts = machine_facts()
    meminfo = Path("/proc/meminfo").read_text().split()
    total_mem = f"{int(meminfo[meminfo.index('MemTotal:') + 1]) / 2**20:.1f} GiB"
    print(
        f"machine: {facts.get('cpu', '?')}, {facts['nproc']} cores, {total_mem} RAM, "
        f"python {facts['python']}"
    )
    loads = {"start": os.getloadavg()}
    git = ["git", "-C", str(HERE.parent)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--short", "src"], capture_output=True, text=True)
    facts["git"] = head.stdout.strip() + (" + uncommitted changes in src/" if dirty.stdout else "")
    print(f"featureledger: commit {facts['git']}")
    print(f"load average at start: {loads['start']}")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="fl-bench-vs-feast-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"entities": args.entities, "features": len(FEATURES), "args": {}}
    results["args"] = {k: str(v) for k, v in vars(args).items()}
    try:
        table = make_data(args.entities, args.seed)
        data = work / "users.parquet"
        pq.write_table(table, data)
        rnd = random.Random(args.seed)
        check_keys = rnd.sample(range(args.entities), min(args.check, args.entities))
        check_keys += [args.entities, -1]  # unknown keys: every feature NULL
        (work / "check_keys.json").write_text(json.dumps(check_keys))
        one = request_keys(args.entities, 1, args.reads, args.seed)
        hundred = request_keys(args.entities, 100, args.reads_100, args.seed + 1)

        print(f"featureledger: {args.entities:,} entities ...", flush=True)
        loads["featureledger"] = os.getloadavg()
        fl_root = work / "featureledger"
        shutil.rmtree(fl_root, ignore_errors=True)
        fl = run_featureledger(
            fl_root,
            table,
            [[{"user_id": k} for k in ks] for ks in one],
            [[{"user_id": k} for k in ks] for ks in hundred],
            check_keys,
            args.materialize_repeat,
        )
        token = fl.pop("token")
        check = fl.pop("check")
        one_entity_diffs = fl.pop("one_entity_diffs")

        print("Feast (benchmarks/feast_online_runner.py in .venv-feast) ...", flush=True)
        loads["feast"] = os.getloadavg()
        feast_repo = work / "feast"
        fe = run_child(
            [
                str(feast_python),
                str(HERE / "feast_online_runner.py"),
                "--data",
                str(data),
                "--workdir",
                str(feast_repo),
                "--reads",
                str(args.reads),
                "--reads-100",
                str(args.reads_100),
                "--seed",
                str(args.seed),
                "--check-keys",
                str(work / "check_keys.json"),
            ],
            timeout=3600,
        )
        if "error" in fe:
            raise SystemExit(f"the Feast runner failed: {fe['error']}")
        diffs = same_cells(check, fe.pop("check")) + one_entity_diffs
        results["check"] = {
            "entities": len(check_keys),
            "cells": 2 * len(check_keys) * (len(FEATURES) + 1),
            "cells_differing": len(diffs),
            "examples": diffs[:20],
        }
        print(
            f"values: {len(check_keys)} entities x {len(FEATURES)} features compared cell for "
            "cell (featureledger in one call and in one call per entity, Feast in one call), "
            f"{len(diffs)} differ" + (f": {diffs[:5]}" if diffs else "")
        )
        results["featureledger"], results["feast"] = fl, fe

        if not args.no_http:
            print(f"HTTP: {args.requests:,} requests per phase ...", flush=True)
            loads["http"] = os.getloadavg()
            results["http"] = run_http(
                fl_root,
                token,
                feast_repo,
                args.entities,
                args.requests,
                args.max_seconds,
                args.feast_max_requests,
                check_keys[:20] + check_keys[-2:],
            )
            n = results["http"]["check_cells_differing"]
            print(
                "HTTP values: 22 entities compared cell for cell, in one request and in one "
                f"request per entity, {n} differ"
            )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    loads["end"] = os.getloadavg()
    results["load_average"] = loads
    results["machine"] = facts
    rows = table_rows(results)
    results["table"] = rows
    print(
        f"\nfeast {fe['feast']} (offline store {fe['offline_store']}, SQLite online store); "
        f"{args.entities:,} entities x {len(FEATURES)} float64"
    )
    print(
        "materialization: featureledger "
        + ", ".join(f"{s:.2f}" for s in fl["materialize_s"])
        + " s (median kept); Feast "
        + ", ".join(f"{s:.2f}" for s in fe["materialize_s"])
        + " s; featureledger ingest "
        + f"{fl['ingest_s']:.2f} s (not timed for Feast, which reads the Parquet file)"
    )
    print("load averages (1, 5, 15 min): " + "; ".join(f"{k} {v}" for k, v in loads.items()))
    if "http" in results:
        h = results["http"]
        extra = [
            f"{side} {c}: {h[side][c]['requests']} requests, {h[side][c]['errors']} errors, "
            f"{h[side][c]['reconnects']} reconnects"
            for side in ("featureledger", "feast")
            for c in ("c=1", "c=8")
        ]
        print("HTTP phases: " + "; ".join(extra))
    print()
    print_table(rows)
    unmet = [r["metric"] for r in rows if r["met"] is False]
    print("\ntargets not met: " + (", ".join(unmet) if unmet else "none"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    main()
