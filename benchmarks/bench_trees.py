"""Before/after: the same workloads on two source trees of featureledger, in one run.

    python benchmarks/bench_trees.py --before /path/to/old/src [--after src] [--rounds 2]

A change that should not alter speed (a refactoring, a new port) is measured against the
tree it started from: check the old commit out with ``git worktree add /tmp/old COMMIT`` and
pass ``--before /tmp/old/src``. Every measurement runs in a child process whose
``PYTHONPATH`` points at one tree; the trees alternate within each round (before, after;
then after, before) so a change in machine load hits both sides alike, and the best of the
rounds is kept. Workloads, each on data made here with fixed seeds:

- ``pit``: ``training_data`` of a view over two groups (``--pit-rows`` rows each, about 4
  rows per key, one group skewed so that 1 % of the keys hold half of its rows) for
  ``--entities`` entity rows; the timed call is the whole public method.
- ``materialize``: ``materialize()`` of a group of ``--online-rows`` keys, one row each,
  into the embedded SQLite online store (a full rebuild), as rows per second.
- ``online``: ``get_online_features`` in-process, 1 entity and 100 entities per call,
  p50 and p99 in microseconds.

Values are compared between the trees (the training set's content hash and the online
answers), so a speed-up that changed results would show.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine_facts, request_keys, run_child, time_calls

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _pit_frames(rows: int, entities: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(7)
    keys = rows // 4
    span = 90 * 86_400_000_000  # 90 days in microseconds
    even = rng.integers(0, keys, rows)
    # skewed: half of the rows go to 1 % of the keys
    hot = rng.integers(0, max(keys // 100, 1), rows // 2)
    skewed = np.concatenate([hot, rng.integers(0, keys, rows - rows // 2)])

    def group(user: Any, seed: int, prefix: str) -> pa.Table:
        r = np.random.default_rng(seed)
        t = r.integers(0, span, len(user))
        return pa.table(
            {
                "user_id": pa.array(user, pa.int64()),
                "event_timestamp": pa.array(
                    (np.datetime64("2025-01-01") + t.astype("timedelta64[us]")).astype(
                        "datetime64[us]"
                    ),
                    pa.timestamp("us", tz="UTC"),
                ),
                **{f"{prefix}{i}": pa.array(r.normal(size=len(user))) for i in range(4)},
            }
        )

    ent_t = rng.integers(0, span, entities)
    return {
        "even": group(even, 1, "f"),
        "skewed": group(skewed, 2, "g"),
        "entities": pa.table(
            {
                "user_id": pa.array(rng.integers(0, keys, entities), pa.int64()),
                "event_timestamp": pa.array(
                    (np.datetime64("2025-01-01") + ent_t.astype("timedelta64[us]")).astype(
                        "datetime64[us]"
                    ),
                    pa.timestamp("us", tz="UTC"),
                ),
            }
        ),
    }


def child_pit(args: argparse.Namespace) -> None:
    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    frames = _pit_frames(args.pit_rows, args.entities)
    user = Entity("user", join_keys=["user_id"])
    groups = [
        FeatureGroup(
            name,
            user,
            features=[Field(f"{prefix}{i}", "float64") for i in range(4)],
            ttl=timedelta(days=ttl),
        )
        for name, prefix, ttl in (("even", "f", 30), ("skewed", "g", 7))
    ]
    view = FeatureView("v", groups)
    repo = Path(args.repo)
    with FeatureStore.init(repo) as store:
        store.apply([user, *groups, view])
        for g in groups:
            store.ingest(g.name, frames[g.name])
        store.wait_for_stats()
        t = time.perf_counter()
        td = store.training_data("v", frames["entities"])
        seconds = time.perf_counter() - t
        emit(
            {
                "ok": True,
                "seconds": seconds,
                "content": str(td.record.content),
                "rows": td.record.rows,
            }
        )


def child_online(args: argparse.Namespace) -> None:
    import numpy as np
    import pyarrow as pa

    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    n = args.online_rows
    rng = np.random.default_rng(3)
    user = Entity("user", join_keys=["user_id"])
    stats = FeatureGroup(
        "stats",
        user,
        features=[Field(f"f{i}", "float64") for i in range(14)],
        ttl=timedelta(days=2),
        online=True,
    )
    rows = pa.table(
        {
            "user_id": pa.array(np.arange(n), pa.int64()),
            "event_timestamp": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
            **{f"f{i}": pa.array(rng.normal(size=n)) for i in range(14)},
        }
    )
    repo = Path(args.repo)
    with FeatureStore.init(repo) as store:
        store.apply([user, stats, FeatureView("v", [stats])])
        store.ingest("stats", rows)
        store.wait_for_stats()
        t = time.perf_counter()
        done = store.materialize(["stats"], incremental=False)
        seconds = time.perf_counter() - t
        assert done[0].rows == n
        now = T0 + timedelta(hours=1)
        one = [[{"user_id": k} for k in ks] for ks in request_keys(n, 1, args.reads, seed=5)]
        hundred = [
            {"user_id": ks} for ks in request_keys(n, 100, max(args.reads // 10, 100), seed=6)
        ]

        def read(request: Any) -> Any:
            return store.get_online_features("v", request, now=now)

        check = store.get_online_features("v", hundred[0], now=now).to_pylist()
        emit(
            {
                "ok": True,
                "materialize_rows_per_s": n / seconds,
                "one": time_calls(read, one, warmup=min(500, len(one))),
                "hundred": time_calls(read, hundred, warmup=min(50, len(hundred))),
                "check": check,
            }
        )


def _run(tree: Path, role: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    repo = work / f"{role}-repo"
    shutil.rmtree(repo, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--role",
        role,
        "--repo",
        str(repo),
        "--pit-rows",
        str(args.pit_rows),
        "--entities",
        str(args.entities),
        "--online-rows",
        str(args.online_rows),
        "--reads",
        str(args.reads),
    ]
    result = run_child(cmd, env=env)
    shutil.rmtree(repo, ignore_errors=True)
    if result.get("error"):
        raise SystemExit(f"{role} on {tree} failed: {result}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, help="the src/ folder of the baseline tree")
    ap.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1] / "src")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--pit-rows", type=int, default=2_000_000, help="rows per group")
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--online-rows", type=int, default=1_000_000)
    ap.add_argument("--reads", type=int, default=5_000)
    ap.add_argument("--only", default="pit,online", help="pit, online or both")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--repo", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        {"pit": child_pit, "online": child_online}[args.role](args)
        return
    if args.before is None:
        ap.error("--before is required")
    facts = machine_facts()
    print(f"machine: {facts.get('cpu')}, nproc={facts.get('nproc')}")
    print(f"before: {args.before}\nafter:  {args.after}")
    roles = args.only.split(",")
    trees = {"before": args.before, "after": args.after}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {t: {r: [] for r in roles} for t in trees}
    work = Path(tempfile.mkdtemp(prefix="fl-bench-trees-"))
    try:
        for i in range(args.rounds):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for role in roles:
                for name in order:
                    r = _run(trees[name], role, args, work)
                    runs[name][role].append(r)
                    print(f"round {i + 1} {role:7s} {name:6s} load {r.get('load1_before', 0):.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def best(name: str, role: str, key: Any, low: bool = True) -> float:
        values = [key(r) for r in runs[name][role]]
        return min(values) if low else max(values)

    rows = []
    if "pit" in roles:
        same = {r["content"] for t in trees for r in runs[t]["pit"]}
        rows.append(("training_data (s)", lambda n: best(n, "pit", lambda r: r["seconds"]), True))
        print(f"\npit: training sets equal across trees: {len(same) == 1}")
    if "online" in roles:
        same = {json.dumps(r["check"], default=str) for t in trees for r in runs[t]["online"]}
        print(f"online: answers equal across trees: {len(same) == 1}")
        rows += [
            (
                "materialize (rows/s)",
                lambda n: best(n, "online", lambda r: r["materialize_rows_per_s"], low=False),
                False,
            ),
            ("1 entity p50 (us)", lambda n: best(n, "online", lambda r: r["one"]["p50_us"]), True),
            ("1 entity p99 (us)", lambda n: best(n, "online", lambda r: r["one"]["p99_us"]), True),
            (
                "100 entities p50 (us)",
                lambda n: best(n, "online", lambda r: r["hundred"]["p50_us"]),
                True,
            ),
            (
                "100 entities p99 (us)",
                lambda n: best(n, "online", lambda r: r["hundred"]["p99_us"]),
                True,
            ),
        ]
    print(f"\n{'measure':24s} {'before':>12s} {'after':>12s} {'after/before':>13s}")
    table = {}
    for label, get, lower_is_better in rows:
        b, a = get("before"), get("after")
        table[label] = {"before": b, "after": a, "ratio": a / b}
        note = "(lower is better)" if lower_is_better else "(higher is better)"
        print(f"{label:24s} {b:12,.2f} {a:12,.2f} {a / b:12.3f}x {note}")
    if args.json:
        every = {
            t: {
                r: [{k: v for k, v in run.items() if k != "check"} for run in runs[t][r]]
                for r in roles
            }
            for t in trees
        }
        args.json.write_text(
            json.dumps({"machine": facts, "results": table, "runs": every}, indent=2, default=str)
        )


if __name__ == "__main__":
    main()
