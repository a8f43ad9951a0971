"""Lineage query benchmark: featureledger's LineageGraph on a synthetic 100k-node repository,
against networkx and against a naive recursive implementation.

    python benchmarks/bench_lineage.py [--scale 1.0] [--queries 40] [--repeat 3] [--json OUT]
    python benchmarks/bench_lineage.py --setup      # create benchmarks/.venv-lineage (networkx)

The graph is built by ``build_graph`` from registry records shaped like a real repository
(scale 1: 105,600 nodes and 284,899 edges):

    100 sources -> 200 feature groups x 200 data versions, each written by its own ingest
    run that read one source (every 40th version an overwrite, every 97th a rollback to
    ten versions back) -> 100 feature views of 5 groups -> 10,000 training datasets (100
    per view, each pinning one data version of each of its 5 groups, written by a
    training-data run that read them) -> 5,000 models (one per two training sets) ->
    200 deployments, each moved to 5 different models over time.

Queries, each timed over the same ``--queries`` roots (seeded) and reported as the mean
time per query (best of ``--repeat`` passes):

    ancestors(deployment)        everything upstream of a served model, full depth
    ancestors(training set, 3)   three hops upstream
    descendants(data version)    everything downstream of a random data version
    impact(data version)         the same, grouped by kind and sorted (what `impact` prints)
    impact(source)               everything a raw source feeds
    descendants(definition, 2)   two hops downstream of a feature group definition

Baselines, on exactly the same nodes and edges:

- networkx (``nx.ancestors``/``nx.descendants``; ``single_source_shortest_path_length``
  with ``cutoff`` for depth limits, on ``G.reverse(copy=False)`` upstream), run in a child
  process with benchmarks/.venv-lineage/bin/python when that venv exists, so networkx
  never becomes a dependency of featureledger;
- a naive recursive depth-first search over the same adjacency dicts (the first thing one
  writes; the recursion limit is raised so version chains fit).

Every implementation's answer sizes are compared per root; a mismatch fails the run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HERE, emit, machine_facts, run_child

LINEAGE_VENV = HERE / ".venv-lineage"
QUERIES = [
    "ancestors(deployment)",
    "ancestors(training set, 3)",
    "descendants(data version)",
    "impact(data version)",
    "impact(source)",
    "descendants(definition, 2)",
]
_DIGITS = re.compile(r"(\d+)")


def natural(identity: str) -> list[Any]:
    """The natural sort key featureledger uses (``#9`` before ``#10``), for the baselines."""
    parts: list[Any] = _DIGITS.split(identity)
    parts[1::2] = map(int, parts[1::2])
    return parts


# -- the synthetic repository (needs featureledger) ---------------------------------------------
def make_records(scale: float, seed: int) -> list[object]:
    from featureledger.hashing import ContentHash
    from featureledger.lineage import DeploymentRecord, ModelRecord
    from featureledger.registry.base import (
        DataVersion,
        DefinitionRecord,
        RunRecord,
        TrainingDatasetRecord,
    )

    rng = random.Random(seed)
    n_sources = max(2, int(100 * scale))
    n_groups = max(5, int(200 * scale))
    n_versions = 200
    n_views = max(2, int(100 * scale))
    per_view = 100
    n_deployments = max(2, int(200 * scale))
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    empty = ContentHash()
    counter = iter(range(10**9))

    def rid() -> str:
        return f"{next(counter):032x}"  # a UUID's 32 hex digits, cheaper than uuid4

    records: list[object] = []
    groups = [f"g{i:03d}" for i in range(n_groups)]
    for i, g in enumerate(groups):
        records.append(DefinitionRecord("feature_group", g, 1, 0, 0, {"name": g}, "h", t0, "b"))
        source = f"s3://raw/source_{i % n_sources:03d}.parquet"
        for v in range(n_versions):
            if v == 0:
                op = "create"
            elif v % 97 == 0:
                op = "rollback"
            elif v % 40 == 0:
                op = "overwrite"
            else:
                op = "upsert"
            run = rid()
            note = f"rollback to #{v - 10}" if op == "rollback" else ""
            at = t0 + timedelta(minutes=v)
            records.append(DataVersion(g, 1, v, op, 0, 0, 0, empty, "s", {}, run, "b", at, note))
            records.append(
                RunRecord(
                    run,
                    "ingest" if op != "rollback" else "rollback",
                    "succeeded",
                    "b",
                    at,
                    at,
                    {"group": g, "major": 1},
                    [source] if op in ("upsert", "overwrite") else [],
                    [f"feature_group/{g}@v1#{v}"],
                )
            )
    n_models = 0
    for w in range(n_views):
        chosen = rng.sample(groups, 5)
        spec = {
            "name": f"view{w:03d}",
            "sources": [{"group": g, "major": 1, "features": ["f"]} for g in chosen],
        }
        records.append(
            DefinitionRecord("feature_view", f"view{w:03d}", 1, 0, 0, spec, "h", t0, "b")
        )
        for number in range(1, per_view + 1):
            pins = {}
            for g in chosen:
                v = rng.randrange(1, n_versions)
                pins[g] = {"major": 1, "version": v, "identity": f"feature_group/{g}@v1#{v}"}
            run = rid()
            td = TrainingDatasetRecord(
                f"view{w:03d}", 1, number, pins, "e", empty, 0, [], "", None, run, "b", t0
            )
            records.append(td)
            records.append(
                RunRecord(
                    run,
                    "training-data",
                    "succeeded",
                    "b",
                    t0,
                    t0,
                    {"view": f"view{w:03d}"},
                    [p["identity"] for p in pins.values()],
                    [str(td.identity)],
                )
            )
            if number % 2 == 0:
                n_models += 1
                records.append(ModelRecord(f"model{w:03d}", number // 2, str(td.identity)))
    models = [r for r in records if isinstance(r, ModelRecord)]
    for d in range(n_deployments):
        for k in range(5):
            m = rng.choice(models)
            records.append(DeploymentRecord(f"dep{d:03d}", str(m.identity), t0 + timedelta(days=k)))
    return records


def choose_roots(graph: Any, count: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed + 1)

    def pick(kind: str) -> list[str]:
        nodes = sorted(graph.nodes(kind))
        return [rng.choice(nodes) for _ in range(count)]

    return {
        "ancestors(deployment)": pick("deployment"),
        "ancestors(training set, 3)": pick("training_dataset"),
        "descendants(data version)": pick("data_version"),
        "impact(data version)": pick("data_version"),
        "impact(source)": pick("source"),
        "descendants(definition, 2)": pick("feature_group"),
    }


def impact_size(by_kind: dict[str, list[str]]) -> int:
    return sum(len(v) for v in by_kind.values())


# -- implementations -------------------------------------------------------------------------------
def featureledger_queries(graph: Any) -> dict[str, Callable[[str], int]]:
    return {
        "ancestors(deployment)": lambda n: len(graph.ancestors(n)),
        "ancestors(training set, 3)": lambda n: len(graph.ancestors(n, depth=3)),
        "descendants(data version)": lambda n: len(graph.descendants(n)),
        "impact(data version)": lambda n: len(graph.impact(n)),
        "impact(source)": lambda n: len(graph.impact(n)),
        "descendants(definition, 2)": lambda n: len(graph.descendants(n, depth=2)),
    }


def recursive_queries(
    succ: dict[str, list[str]], pred: dict[str, list[str]], kind: dict[str, str]
) -> dict[str, Callable[[str], int]]:
    """The naive version: recursive depth-first search, a set of seen nodes."""
    sys.setrecursionlimit(1_000_000)

    def reach(adj: dict[str, list[str]], node: str, seen: set[str]) -> set[str]:
        for nxt in adj[node]:
            if nxt not in seen:
                seen.add(nxt)
                reach(adj, nxt, seen)
        return seen

    def reach_depth(adj: dict[str, list[str]], node: str, left: int, best: dict[str, int]) -> None:
        # a node reached again with more hops left must be explored again
        if left == 0:
            return
        for nxt in adj[node]:
            if best.get(nxt, -1) < left - 1:
                best[nxt] = left - 1
                reach_depth(adj, nxt, left - 1, best)

    def limited(adj: dict[str, list[str]], node: str, depth: int) -> int:
        best: dict[str, int] = {node: depth}
        reach_depth(adj, node, depth, best)
        return len(best) - 1

    def impact(node: str) -> int:
        groups: dict[str, list[str]] = {}
        for n in reach(succ, node, set()) - {node}:
            groups.setdefault(kind[n], []).append(n)
        return impact_size({k: sorted(v, key=natural) for k, v in groups.items()})

    return {
        "ancestors(deployment)": lambda n: len(reach(pred, n, set()) - {n}),
        "ancestors(training set, 3)": lambda n: limited(pred, n, 3),
        "descendants(data version)": lambda n: len(reach(succ, n, set()) - {n}),
        "impact(data version)": impact,
        "impact(source)": impact,
        "descendants(definition, 2)": lambda n: limited(succ, n, 2),
    }


def networkx_queries(g: Any, kind: dict[str, str]) -> dict[str, Callable[[str], int]]:
    import networkx as nx

    rev = g.reverse(copy=False)

    def impact(node: str) -> int:
        groups: dict[str, list[str]] = {}
        for n in nx.descendants(g, node):
            groups.setdefault(kind[n], []).append(n)
        return impact_size({k: sorted(v, key=natural) for k, v in groups.items()})

    return {
        "ancestors(deployment)": lambda n: len(nx.ancestors(g, n)),
        "ancestors(training set, 3)": lambda n: (
            len(nx.single_source_shortest_path_length(rev, n, cutoff=3)) - 1
        ),
        "descendants(data version)": lambda n: len(nx.descendants(g, n)),
        "impact(data version)": impact,
        "impact(source)": impact,
        "descendants(definition, 2)": lambda n: (
            len(nx.single_source_shortest_path_length(g, n, cutoff=2)) - 1
        ),
    }


def time_queries(
    impl: dict[str, Callable[[str], int]], roots: dict[str, list[str]], repeat: int
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in QUERIES:
        fn = impl[name]
        best = float("inf")
        sizes: list[int] = []
        for _ in range(repeat):
            # as timeit does: no collector pauses inside the timed loop (they depend on the
            # whole process's heap, which differs between the implementations' processes)
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                sizes = [fn(n) for n in roots[name]]
                best = min(best, time.perf_counter() - t0)
            finally:
                gc.enable()
        out[name] = {"ms": 1000 * best / len(roots[name]), "sizes": sizes}
    return out


# -- the networkx child (standard library + networkx only) ---------------------------------------
def networkx_worker(path: str) -> None:
    import networkx as nx

    data = json.loads(Path(path).read_text())
    t0 = time.perf_counter()
    g = nx.DiGraph()
    g.add_nodes_from(data["kind"])
    g.add_edges_from(data["edges"])
    build = time.perf_counter() - t0
    results = time_queries(networkx_queries(g, data["kind"]), data["roots"], data["repeat"])
    emit({"ok": True, "networkx": nx.__version__, "build_s": build, "queries": results})


# -- the parent ------------------------------------------------------------------------------------
def setup() -> None:
    if not (LINEAGE_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(LINEAGE_VENV)], check=True)
    pip = str(LINEAGE_VENV / "bin" / "pip")
    subprocess.run([pip, "install", "--quiet", "networkx"], check=True)
    print(f"networkx installed in {LINEAGE_VENV}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--queries", type=int, default=40, help="roots per query type")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--setup", action="store_true", help="create the networkx venv")
    parser.add_argument("--networkx-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.networkx_worker:
        networkx_worker(args.networkx_worker)
        return
    if args.setup:
        setup()
        return

    from featureledger.lineage import build_graph

    t0 = time.perf_counter()
    records = make_records(args.scale, args.seed)
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = build_graph(records)
    build = time.perf_counter() - t0
    del records
    nodes, edges = len(graph), graph.edge_count
    print(f"graph: {nodes:,} nodes, {edges:,} edges  {graph.counts()}")
    print(f"records made in {made:.2f} s; build_graph (with the acyclicity check) {build:.2f} s")

    roots = choose_roots(graph, args.queries, args.seed)
    results: dict[str, Any] = {
        "featureledger": time_queries(featureledger_queries(graph), roots, args.repeat)
    }
    kind = {n: graph.node(n).kind for n in graph.nodes()}
    succ: dict[str, list[str]] = {n: [] for n in kind}
    pred: dict[str, list[str]] = {n: [] for n in kind}
    edge_list = []
    for e in graph.edges():
        succ[e.source].append(e.target)
        pred[e.target].append(e.source)
        edge_list.append([e.source, e.target])
    results["recursive"] = time_queries(recursive_queries(succ, pred, kind), roots, args.repeat)

    nx_python = LINEAGE_VENV / "bin" / "python"
    nx_info: dict[str, Any] = {}
    if nx_python.exists():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "graph.json"
            path.write_text(
                json.dumps(
                    {"kind": kind, "edges": edge_list, "roots": roots, "repeat": args.repeat}
                )
            )
            child = run_child(
                [str(nx_python), __file__, "--networkx-worker", str(path)], timeout=3600
            )
        if child.get("error"):
            print(f"networkx baseline failed: {child['error']}")
        else:
            results["networkx"] = child["queries"]
            nx_info = {"version": child["networkx"], "build_s": child["build_s"]}
    else:
        print(f"networkx baseline skipped: run `{sys.argv[0]} --setup` to create {LINEAGE_VENV}")

    for name in QUERIES:
        expected = results["featureledger"][name]["sizes"]
        for impl, res in results.items():
            if res[name]["sizes"] != expected:
                raise SystemExit(f"{impl} disagrees with featureledger on {name}")

    impls = [i for i in ("featureledger", "networkx", "recursive") if i in results]
    header = f"{'query (mean per query)':30} {'nodes':>8}" + "".join(f" {i:>14}" for i in impls)
    header += "".join(f" {'x vs ' + i:>12}" for i in impls[1:])
    print(header)
    for name in QUERIES:
        ours = results["featureledger"][name]["ms"]
        sizes = results["featureledger"][name]["sizes"]
        row = f"{name:30} {sum(sizes) / len(sizes):8.0f}"
        row += "".join(f" {results[i][name]['ms']:11.3f} ms" for i in impls)
        row += "".join(f" {results[i][name]['ms'] / ours:11.1f}x" for i in impls[1:])
        print(row)
    if nx_info:
        print(
            f"networkx {nx_info['version']}: DiGraph from the edge list {nx_info['build_s']:.2f} s"
        )
    print(f"machine: {machine_facts().get('cpu', '?')}, load {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "nodes": nodes,
                    "edges": edges,
                    "build_graph_s": build,
                    "networkx": nx_info,
                    "queries": {
                        i: {q: {"ms": r[q]["ms"]} for q in QUERIES} for i, r in results.items()
                    },
                    "machine": machine_facts(),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
