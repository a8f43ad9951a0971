"""Web UI page times on a repository with 1,000 feature groups and 10,000 data versions,
against the same pages on a small repository (the baseline) in the same run.

    python benchmarks/bench_ui.py [--groups 1000] [--versions 10] [--requests 40] [--json PATH]

The small repository is built through the facade: 5 groups, each with ``--versions`` real
ingests of 2,000 rows (statistics, validations, runs, audit entries), a view over them, a
training set, a model and a deployment. The large one is a copy of it plus ``--groups - 5``
synthetic groups: their definitions through `FeatureStore.apply` (which also creates each
group's empty table, data version #0), then versions #1.. straight through the registry
port (`RegistryBackend.add_data_version`, with their audit entries; statistics copied from a
real version with `put_stats`), because 10,000 real ingests would take an hour here; 50
views select them. Pages of synthetic groups show everything but quarantine and diffs,
which need real tables; diffs are timed on a real group.

Each page is requested ``--requests`` times over loopback HTTP (uvicorn in a thread, after
3 untimed requests) with a bearer token; printed: p50, p95 and the ratio of the large
repository's p50 to the small one's. The lineage pages are timed twice: as served (the
built graph is reused for `ui.graph.GRAPH_SECONDS`), and cold, rebuilding the graph on
every request.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_facts

REAL = 5
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def build_small(root: Path, versions: int) -> Path:
    import numpy as np
    import pyarrow as pa

    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    store = FeatureStore.init(root)
    user = Entity("user", join_keys=["user_id"])
    groups = [
        FeatureGroup(
            f"real_{i}",
            user,
            features=[Field("spend", "float64"), Field("visits", "int64"), Field("city", "string")],
            owner="bench",
            tags={"tier": "real"},
        )
        for i in range(REAL)
    ]
    view = FeatureView("bench", groups[:3], owner="bench", full_feature_names=True)
    store.apply([user, *groups, view])
    rng = np.random.default_rng(0)
    for g in groups:
        for v in range(versions - 1):  # with #0 from apply: `versions` per group
            n = 2000
            store.ingest(
                g.name,
                pa.table(
                    {
                        "user_id": np.arange(n),
                        "event_timestamp": [T0 + timedelta(days=v)] * n,
                        "spend": rng.normal(100, 10, n),
                        "visits": rng.integers(0, 40, n),
                        "city": rng.choice(["Oslo", "Lyon", "Porto", "Graz"], n),
                    }
                ),
                note=f"day {v}",
            )
    frame = pa.table(
        {"user_id": list(range(500)), "event_timestamp": [T0 + timedelta(days=30)] * 500}
    )
    td = store.training_data("bench", frame)
    artifact = root.parent / "model.bin"
    artifact.write_text("weights")
    store.register_model("bench_model", artifact, training_dataset=td, metrics={"auc": 0.8})
    store.deploy("bench_api", "bench_model")
    store.wait_for_stats()
    store.close()
    return root


def grow(root: Path, groups: int, versions: int) -> None:
    """Add synthetic groups, their data versions (registry port) and 50 views."""
    from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

    store = FeatureStore(root)
    user = Entity("user", join_keys=["user_id"])
    synthetic = [
        FeatureGroup(
            f"syn_{i:04d}",
            user,
            features=[Field("spend", "float64"), Field("visits", "int64"), Field("city", "string")],
            owner=f"team_{i % 17}",
            tags={"tier": "synthetic", "shard": str(i % 10)},
            description=f"synthetic group {i}",
        )
        for i in range(groups - REAL)
    ]
    started = time.perf_counter()
    for chunk in range(0, len(synthetic), 100):
        store.apply([user, *synthetic[chunk : chunk + 100]])
    print(f"  applied {len(synthetic)} definitions in {time.perf_counter() - started:.1f} s")
    reg = store._svc.registry  # the registry port: see the module docstring
    template = reg.data_versions("real_0", 1)[-1]
    stats_json = reg.get_stats(str(template.identity))
    started = time.perf_counter()
    for g in synthetic:
        for v in range(1, versions):
            record = replace(
                template,
                group=g.name,
                major=1,
                version=v,
                operation="append",
                run_id=None,
                note=f"synthetic #{v}",
                created_at=T0 + timedelta(days=v),
            )
            reg.add_data_version(record)
            if stats_json is not None:
                reg.put_stats(str(record.identity), stats_json)
    print(
        f"  recorded {len(synthetic) * (versions - 1)} data versions in "
        f"{time.perf_counter() - started:.1f} s"
    )
    views = [
        FeatureView(
            f"view_{i:02d}", synthetic[i * 10 : i * 10 + 3], owner="bench", full_feature_names=True
        )
        for i in range(min(50, len(synthetic) // 10))
    ]
    store.apply(views)
    store.close()


def serve(root: Path) -> tuple[Any, Any, str, str, Any]:
    import socket

    import uvicorn

    from featureledger import FeatureStore
    from featureledger.ui import create_ui

    store = FeatureStore(root)
    token = store.create_token("reader", all_views=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_ui(store), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            store.close()
            raise RuntimeError(f"the UI server did not start on port {port}")
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{port}", token, store


def pages(versions: int, synthetic: str | None) -> dict[str, str]:
    """The pages timed; ``synthetic``: a synthetic group (large repository only)."""
    last = versions - 1
    out = {
        "catalog": "/",
        "catalog search": "/?q=team_3+shard%3D4",
        "catalog groups p5": "/?kind=feature_group&page=5",
        "group (real)": "/group/real_0",
        "group (synthetic)": f"/group/{synthetic}",
        "diff (real)": f"/group/real_0/diff?old=1&new={last}",
        "view": "/view/bench",
        "training set": "/training/bench/1",
        "lineage map": "/lineage",
        "lineage focus": f"/lineage?focus=feature_group/real_0@v1%23{last}",
        "impact": "/impact?identity=feature_group/real_0@v1%231",
        "models": "/models",
        "deployments": "/deployments",
        "monitors": "/monitors",
        "audit": "/audit",
    }
    if synthetic is None:
        del out["group (synthetic)"]
    return out


def measure(url: str, token: str, paths: dict[str, str], n: int) -> dict[str, dict[str, float]]:
    import httpx

    from featureledger.ui import graph

    out: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
        runs = list(paths.items())
        runs += [(f"{k} (cold graph)", p) for k, p in paths.items() if k.startswith("lineage")]
        for name, path in runs:
            graph.GRAPH_SECONDS = 0.0 if "cold" in name else 5.0
            for _ in range(3):
                r = c.get(path)
                assert r.status_code == 200, (name, r.status_code, r.text[-500:])
            times = []
            for _ in range(n):
                t = time.perf_counter()
                r = c.get(path)
                times.append(time.perf_counter() - t)
                assert r.status_code == 200, (name, r.status_code)
            times.sort()
            out[name] = {
                "p50_ms": 1000 * statistics.median(times),
                "p95_ms": 1000 * times[min(len(times) - 1, int(0.95 * len(times)))],
                "bytes": len(r.content),
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--versions", type=int, default=10, help="data versions per group")
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print("machine:", json.dumps(machine_facts()))
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    try:
        t = time.perf_counter()
        small = build_small(work / "small" / "repo", args.versions)
        print(
            f"small repository: {REAL} groups x {args.versions} versions, "
            f"{time.perf_counter() - t:.1f} s"
        )
        large = work / "large" / "repo"
        shutil.copytree(small, large)
        t = time.perf_counter()
        grow(large, args.groups, args.versions)
        print(
            f"large repository: {args.groups} groups x {args.versions} versions, "
            f"{time.perf_counter() - t:.1f} s"
        )
        results = {}
        for label, root in (("small", small), ("large", large)):
            server, thread, url, token, store = serve(root)
            try:
                middle = f"syn_{(args.groups - REAL) // 2:04d}" if label == "large" else None
                results[label] = measure(url, token, pages(args.versions, middle), args.requests)
            finally:
                server.should_exit = True
                thread.join(10)
                store.close()
        print(
            f"\n{'page':28} {'small p50':>10} {'p95':>8} {'large p50':>10} {'p95':>8} "
            f"{'large/small':>11} {'KiB':>6}"
        )
        for name, big in results["large"].items():
            base = results["small"].get(name, results["small"]["group (real)"])
            print(
                f"{name:28} {base['p50_ms']:9.1f}ms {base['p95_ms']:7.1f}ms "
                f"{big['p50_ms']:9.1f}ms {big['p95_ms']:7.1f}ms "
                f"{big['p50_ms'] / base['p50_ms']:10.2f}x {big['bytes'] / 1024:6.0f}"
            )
        print("(group (synthetic) is compared with the small repository's real group page)")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
