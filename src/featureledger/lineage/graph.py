"""The lineage DAG over identities, its queries, and `build_graph` from registry records.

Nodes are printed identities (``feature_group/user_stats@v2#17``, ``run/<uuid>``, a
source URI) typed by `kind_of`; edges point downstream (input -> output) and carry their
evidence: the run that produced them and an edge kind (see `EDGE_KINDS`).

Storage is two adjacency dicts (successors and predecessors of each node), so every
query is an iterative breadth-first search costing O(visited nodes + their edges),
independent of the graph's size. Acyclicity is kept on every `add_edge` with the
Pearce-Kelly dynamic topological order: each node holds a position such that every
edge goes from a lower to a higher one; an edge that already agrees costs O(1), one
that does not reorders only the nodes between its two ends, and one that would close
a cycle is refused with the path it would close. `build_graph` loads records in bulk
and checks the whole graph once with Kahn's algorithm instead.
"""

from __future__ import annotations

import gc
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from featureledger.definitions.identity import VersionId
from featureledger.errors import NotFoundError
from featureledger.lineage.base import (
    NODE_KINDS,
    DeploymentRecord,
    LineageCycleError,
    ModelRecord,
    canonical,
    kind_of,
)
from featureledger.registry.base import (
    DataVersion,
    DefinitionRecord,
    RunRecord,
    TrainingDatasetRecord,
)

Direction = Literal["upstream", "downstream"]
DIRECTIONS: tuple[str, ...] = ("upstream", "downstream")

#: data-version operations whose content does not build on the previous version's
NO_PARENT_OPERATIONS = frozenset({"create", "overwrite"})
#: data-version operations whose content equals an older version's
RESTORE_OPERATIONS = frozenset({"rollback"})
_ROLLBACK_NOTE = re.compile(r"rollback to #(\d+)")
_DIGITS = re.compile(r"(\d+)")
_NO_DETAIL: Mapping[str, Any] = MappingProxyType({})
# an identity already in its printed form (as the registry stores them): no parse needed
_CANONICAL = re.compile(
    r"(?P<kind>entity|feature_group|feature_view|training_dataset|model|deployment)"
    r"/[A-Za-z_][A-Za-z0-9_\-]*(?:@v(?:0|[1-9]\d*))?(?P<data>#(?:0|[1-9]\d*))?"
    r"(?:/(?:0|[1-9]\d*))?"
)


def _classify(identity: str) -> tuple[str, str]:
    """``(canonical form, kind)``; one regex match for the usual, already canonical text."""
    match = _CANONICAL.fullmatch(identity)
    if match is not None and (match["data"] is None or match["kind"] == "feature_group"):
        return identity, "data_version" if match["data"] else match["kind"]
    ident = canonical(identity)
    return ident, kind_of(ident)


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    kind: str
    attrs: Mapping[str, Any]


class Edge(NamedTuple):
    """``source`` -> ``target`` (downstream), with its evidence. A named tuple: a graph
    holds hundreds of thousands, and tuples are the cheapest immutable record to build."""

    source: str
    target: str
    kind: str
    run: str | None = None
    detail: Mapping[str, Any] = _NO_DETAIL

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "target": self.target, "kind": self.kind}
        if self.run is not None:
            out["run"] = self.run
        if self.detail:
            out["detail"] = dict(self.detail)
        return out


@dataclass(frozen=True)
class Lineage:
    """The answer to one lineage query: reached nodes with their distance, and the edges
    between them (always oriented downstream, whatever the query's direction)."""

    root: str
    direction: str
    depth: int | None
    nodes: dict[str, int]
    edges: list[Edge]


@dataclass(frozen=True)
class Impact:
    """Everything downstream of ``root``, by node kind: what a bad ``root`` affects.

    ``serving`` lists the deployments whose *current* model is affected (or is
    ``root``); ``affected["deployment"]`` also holds deployments that served an
    affected model in the past.
    """

    root: str
    affected: dict[str, list[str]]
    serving: list[str]

    @property
    def data_versions(self) -> list[str]:
        return self.affected.get("data_version", [])

    @property
    def training_datasets(self) -> list[str]:
        return self.affected.get("training_dataset", [])

    @property
    def models(self) -> list[str]:
        return self.affected.get("model", [])

    @property
    def deployments(self) -> list[str]:
        return self.affected.get("deployment", [])

    @property
    def runs(self) -> list[str]:
        return self.affected.get("run", [])

    def __len__(self) -> int:
        return sum(len(v) for v in self.affected.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "affected": {k: list(v) for k, v in self.affected.items()},
            "serving": list(self.serving),
            "counts": {k: len(v) for k, v in self.affected.items()},
        }


def sort_key(identity: str) -> list[Any]:
    """Natural order: ``#9`` before ``#10`` (text and numbers alternate, so keys compare)."""
    parts: list[Any] = _DIGITS.split(identity)
    parts[1::2] = map(int, parts[1::2])
    return parts


class LineageGraph:
    """A DAG over identities. Edges point downstream; queries never recurse."""

    def __init__(self) -> None:
        self._kind: dict[str, str] = {}
        self._attrs: dict[str, dict[str, Any]] = {}
        self._succ: dict[str, dict[str, Edge]] = {}
        self._pred: dict[str, dict[str, Edge]] = {}
        # Pearce-Kelly topological position: ord[u] < ord[v] for every edge u -> v
        self._ord: dict[str, int] = {}
        self._next = 0
        #: edges `build_graph(strict=False)` dropped because they would close a cycle
        self.refused: list[LineageCycleError] = []

    # -- building ------------------------------------------------------------------------------
    def add_node(self, identity: str | VersionId, kind: str | None = None, **attrs: Any) -> str:
        """Add ``identity`` (or update its attributes); returns its canonical form."""
        ident = canonical(identity)
        self._ensure(ident, kind or kind_of(ident))
        if attrs:
            self._attrs[ident].update(attrs)
        return ident

    def _ensure(self, ident: str, kind: str) -> None:
        if ident not in self._kind:
            self._kind[ident] = kind
            self._attrs[ident] = {}
            self._succ[ident] = {}
            self._pred[ident] = {}
            self._ord[ident] = self._next
            self._next += 1

    def add_edge(
        self,
        source: str | VersionId,
        target: str | VersionId,
        kind: str,
        *,
        run: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Edge:
        """Add ``source`` -> ``target`` (adding missing nodes).

        Raises `LineageCycleError` when ``target`` already reaches ``source``. An edge
        between two nodes already joined is not added again: the first evidence stays.
        """
        s, t = self.add_node(source), self.add_node(target)
        existing = self._succ[s].get(t)
        if existing is not None:
            return existing
        if s == t:
            raise LineageCycleError(s, t, kind, [s])
        if self._ord[s] > self._ord[t]:
            self._reorder(s, t, kind)
        edge = Edge(s, t, kind, run, dict(detail or {}))
        self._succ[s][t] = edge
        self._pred[t][s] = edge
        return edge

    def _reorder(self, s: str, t: str, kind: str) -> None:
        """Make room for s -> t when t is ordered before s (Pearce-Kelly), or refuse it."""
        order = self._ord
        lower, upper = order[t], order[s]
        # nodes reachable from t that sit before s; reaching s itself means a cycle
        came_from: dict[str, str | None] = {t: None}
        forward = [t]
        stack = [t]
        while stack:
            u = stack.pop()
            for v in self._succ[u]:
                if v == s:
                    path = [s, u]
                    back = came_from[u]
                    while back is not None:
                        path.append(back)
                        back = came_from[back]
                    raise LineageCycleError(s, t, kind, path[::-1])
                if v not in came_from and order[v] < upper:
                    came_from[v] = u
                    forward.append(v)
                    stack.append(v)
        # nodes that reach s and sit after t
        seen = {s}
        backward = [s]
        stack = [s]
        while stack:
            u = stack.pop()
            for v in self._pred[u]:
                if v not in seen and order[v] > lower:
                    seen.add(v)
                    backward.append(v)
                    stack.append(v)
        backward.sort(key=order.__getitem__)
        forward.sort(key=order.__getitem__)
        moved = backward + forward
        slots = sorted(order[n] for n in moved)
        for n, slot in zip(moved, slots, strict=True):
            order[n] = slot

    # bulk loading (build_graph): no order upkeep per edge, one acyclicity check at the end
    def _bulk_node(self, ident: str, kind: str, attrs: dict[str, Any]) -> None:
        if ident in self._kind:
            if attrs:
                self._attrs[ident].update(attrs)
            return
        self._kind[ident] = kind
        self._attrs[ident] = attrs
        self._succ[ident] = {}
        self._pred[ident] = {}

    def _bulk_edge(self, edge: Edge) -> None:
        out = self._succ[edge.source]
        if edge.target not in out:  # the first evidence stays
            out[edge.target] = edge
            self._pred[edge.target][edge.source] = edge

    def _bulk_done(self, *, strict: bool) -> LineageGraph:
        order = self._kahn()
        if order is not None:
            self._ord = {n: i for i, n in enumerate(order)}
            self._next = len(order)
            return self
        if strict:
            raise self._find_cycle()
        # rare: rebuild edge by edge, dropping each edge that would close a cycle
        graph = type(self)()
        for ident, kind in self._kind.items():
            graph._ensure(ident, kind)
            graph._attrs[ident] = self._attrs[ident]
        for e in list(self.edges()):
            try:
                graph.add_edge(e.source, e.target, e.kind, run=e.run, detail=e.detail)
            except LineageCycleError as exc:
                graph.refused.append(exc)
        return graph

    def _kahn(self) -> list[str] | None:
        indegree = {n: len(p) for n, p in self._pred.items()}
        ready = deque(n for n, d in indegree.items() if d == 0)
        order: list[str] = []
        while ready:
            u = ready.popleft()
            order.append(u)
            for v in self._succ[u]:
                indegree[v] -= 1
                if indegree[v] == 0:
                    ready.append(v)
        return order if len(order) == len(self._kind) else None

    def _find_cycle(self) -> LineageCycleError:
        indegree = {n: len(p) for n, p in self._pred.items()}
        ready = deque(n for n, d in indegree.items() if d == 0)
        done: set[str] = set()
        while ready:
            u = ready.popleft()
            done.add(u)
            for v in self._succ[u]:
                indegree[v] -= 1
                if indegree[v] == 0:
                    ready.append(v)
        # every node left has a predecessor left: walk predecessors until one repeats
        node = next(n for n in self._kind if n not in done)
        walk: list[str] = []
        index: dict[str, int] = {}
        while node not in index:
            index[node] = len(walk)
            walk.append(node)
            node = next(p for p in self._pred[node] if p not in done)
        cycle = walk[index[node] :][::-1]  # downstream order: cycle[i] -> cycle[i + 1]
        closing = self._succ[cycle[-1]][cycle[0]]
        return LineageCycleError(closing.source, closing.target, closing.kind, cycle)

    # -- reading -------------------------------------------------------------------------------
    def __contains__(self, identity: object) -> bool:
        return isinstance(identity, str | VersionId) and canonical(identity) in self._kind

    def __len__(self) -> int:
        return len(self._kind)

    def node(self, identity: str | VersionId) -> Node:
        ident = self._resolve(identity)
        return Node(ident, self._kind[ident], dict(self._attrs[ident]))

    def nodes(self, kind: str | None = None) -> Iterator[str]:
        return iter(n for n, k in self._kind.items() if kind is None or k == kind)

    def edges(self) -> Iterator[Edge]:
        for out in self._succ.values():
            yield from out.values()

    def edge(self, source: str | VersionId, target: str | VersionId) -> Edge | None:
        return self._succ.get(canonical(source), {}).get(canonical(target))

    @property
    def edge_count(self) -> int:
        return sum(len(out) for out in self._succ.values())

    def counts(self) -> dict[str, int]:
        """Number of nodes of each kind."""
        out: dict[str, int] = {}
        for k in self._kind.values():
            out[k] = out.get(k, 0) + 1
        return {k: out[k] for k in NODE_KINDS if k in out}

    def parents(self, identity: str | VersionId) -> list[Edge]:
        return list(self._pred[self._resolve(identity)].values())

    def children(self, identity: str | VersionId) -> list[Edge]:
        return list(self._succ[self._resolve(identity)].values())

    def topological_order(self) -> list[str]:
        return sorted(self._kind, key=self._ord.__getitem__)

    def _resolve(self, identity: str | VersionId) -> str:
        ident = canonical(identity)
        if ident in self._kind:
            return ident
        similar = sorted((n for n in self._kind if n.startswith(ident)), key=sort_key)[:3]
        hint = (
            f"; did you mean {', '.join(similar)}?"
            if similar
            else (
                "; it may be misspelled, or no recorded run, data version, training dataset, "
                "model or deployment mentions it yet"
            )
        )
        raise NotFoundError(f"{ident} is not in the lineage graph{hint}")

    # -- queries -------------------------------------------------------------------------------
    def _bfs(
        self, start: str, adjacency: dict[str, dict[str, Edge]], depth: int | None
    ) -> dict[str, int]:
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0 or None, got {depth}")
        seen = {start: 0}
        frontier = [start]
        level = 0
        while frontier and (depth is None or level < depth):
            level += 1
            nxt = []
            for u in frontier:
                for v in adjacency[u]:
                    if v not in seen:
                        seen[v] = level
                        nxt.append(v)
            frontier = nxt
        return seen

    def ancestors(self, identity: str | VersionId, depth: int | None = None) -> dict[str, int]:
        """Everything upstream of ``identity`` within ``depth`` hops (all when None),
        mapped to its distance, nearest first; ``identity`` itself is not included."""
        root = self._resolve(identity)
        found = self._bfs(root, self._pred, depth)
        del found[root]
        return found

    def descendants(self, identity: str | VersionId, depth: int | None = None) -> dict[str, int]:
        """Everything downstream of ``identity`` within ``depth`` hops (all when None)."""
        root = self._resolve(identity)
        found = self._bfs(root, self._succ, depth)
        del found[root]
        return found

    def lineage(
        self,
        identity: str | VersionId,
        direction: Direction = "upstream",
        depth: int | None = None,
    ) -> Lineage:
        """The subgraph one lineage query shows: reached nodes (root at distance 0) and
        the edges among them."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        root = self._resolve(identity)
        if direction == "upstream":
            nodes = self._bfs(root, self._pred, depth)
            edges = [e for v in nodes for u, e in self._pred[v].items() if u in nodes]
        else:
            nodes = self._bfs(root, self._succ, depth)
            edges = [e for u in nodes for v, e in self._succ[u].items() if v in nodes]
        return Lineage(root, direction, depth, nodes, edges)

    def impact(self, identity: str | VersionId) -> Impact:
        """What is affected if ``identity`` is bad: all its descendants, by kind."""
        root = self._resolve(identity)
        found = self._bfs(root, self._succ, None)
        by_kind: dict[str, list[str]] = {}
        for n in found:
            if n != root:
                by_kind.setdefault(self._kind[n], []).append(n)
        affected = {k: sorted(by_kind[k], key=sort_key) for k in NODE_KINDS if k in by_kind}
        for k in sorted(set(by_kind) - set(affected)):
            affected[k] = sorted(by_kind[k], key=sort_key)
        serving = [
            d for d in affected.get("deployment", []) if self._attrs[d].get("model") in found
        ]
        return Impact(root, affected, serving)


# -- building from registry records -------------------------------------------------------------
def _rollback_target(dv: DataVersion, runs: Mapping[str, RunRecord]) -> int | None:
    run = runs.get(dv.run_id or "")
    if run is not None and isinstance(run.params.get("to"), int):
        return int(run.params["to"])
    match = _ROLLBACK_NOTE.search(dv.note or "")
    return int(match.group(1)) if match else None


def build_graph(
    records: Iterable[object], /, *, include_runs: bool = True, strict: bool = True
) -> LineageGraph:
    """The lineage DAG of a set of records: `DataVersion`, `TrainingDatasetRecord`,
    `RunRecord`, `DefinitionRecord`, `ModelRecord` and `DeploymentRecord`, in any order.

    Pure: nothing is read but ``records``. Edges (downstream, with the run as evidence):

    - feature group definition version -> each of its data versions (``defines``);
    - data version N-1 -> N (``parent``) unless N is a ``create`` or ``overwrite``, whose
      content does not build on N-1; a ``rollback`` to K gets K -> N (``restored``)
      instead, K read from its run's ``to`` parameter or its note. Other operations
      (upsert, append, compact, add-columns, widen, and Delta operations recovered
      without a record) keep the ``parent`` edge: when unsure, over-report impact;
    - feature view version -> training dataset (``materialized``), each pinned data
      version -> training dataset (``pinned``); with definitions, feature group
      definition version -> feature view version (``selected``);
    - training dataset -> model (``trained_on``), model -> deployment (``deployed``,
      with every time it was deployed; the deployment node's ``model`` attribute is its
      current model);
    - with ``include_runs``, each run is a node: input -> run (``read``) and run -> output
      (``wrote``; none for runs whose status is ``unchanged``: they wrote nothing). A data
      version or training dataset whose run has no record still gets its ``wrote`` edge.
      Without ``include_runs``, runs are only evidence: input -> output (``read``).

    Raises `LineageCycleError` if the records describe a cycle; with ``strict=False`` the
    edges that would close one are dropped and listed in ``graph.refused`` instead.
    """
    # the bulk load allocates hundreds of thousands of acyclic containers; the cyclic
    # collector would rescan them again and again (about 40% of the time at 100k nodes)
    paused = gc.isenabled()
    gc.disable()
    try:
        return _build(records, include_runs=include_runs, strict=strict)
    finally:
        if paused:
            gc.enable()


def _build(records: Iterable[object], *, include_runs: bool, strict: bool) -> LineageGraph:
    data_versions: list[DataVersion] = []
    trainings: list[TrainingDatasetRecord] = []
    runs: list[RunRecord] = []
    definitions: list[DefinitionRecord] = []
    models: list[ModelRecord] = []
    deployments: list[DeploymentRecord] = []
    buckets: list[tuple[type, list[Any]]] = [
        (DataVersion, data_versions),
        (TrainingDatasetRecord, trainings),
        (RunRecord, runs),
        (DefinitionRecord, definitions),
        (ModelRecord, models),
        (DeploymentRecord, deployments),
    ]
    for record in records:
        for cls, bucket in buckets:
            if isinstance(record, cls):
                bucket.append(record)
                break
        else:
            raise TypeError(
                f"build_graph cannot use {type(record).__name__} records; give DataVersion, "
                "TrainingDatasetRecord, RunRecord, DefinitionRecord, ModelRecord or "
                "DeploymentRecord"
            )

    graph = LineageGraph()

    def node(ident: str, kind: str, **attrs: Any) -> str:
        graph._bulk_node(ident, kind, attrs)
        return ident

    def edge(
        source: str, target: str, kind: str, run: str | None, detail: dict[str, Any] | None = None
    ) -> None:
        graph._bulk_edge(Edge(source, target, kind, run, detail or _NO_DETAIL))

    def run_node(run_id: str) -> str:
        return node(f"run/{run_id}", "run")

    # identities repeat (a data version is pinned and read many times): classify each once
    seen_ids: dict[str, tuple[str, str]] = {}

    def mention(identity: str) -> str:
        known = seen_ids.get(identity)
        if known is not None:
            return known[0]
        known = seen_ids[identity] = _classify(identity)
        return node(*known)

    runs_by_id = {r.id: r for r in runs}

    for d in definitions:
        if d.kind == "feature_group":
            node(str(VersionId("feature_group", d.name, d.major)), "feature_group")
    for d in definitions:
        if d.kind == "feature_view":
            view = node(str(VersionId("feature_view", d.name, d.major)), "feature_view")
            for src in d.spec.get("sources", []):
                if src.get("major") is None:
                    continue
                group = node(
                    str(VersionId("feature_group", src["group"], int(src["major"]))),
                    "feature_group",
                )
                edge(group, view, "selected", None)

    tables: dict[tuple[str, int], list[DataVersion]] = {}
    for dv in data_versions:
        tables.setdefault((dv.group, dv.major), []).append(dv)
    for (group, major), versions in tables.items():
        versions.sort(key=lambda v: v.version)
        table = node(f"feature_group/{group}@v{major}", "feature_group")
        # f-strings print exactly what VersionId.__str__ does, without building the objects
        ids = {v.version: f"feature_group/{group}@v{major}#{v.version}" for v in versions}
        previous: str | None = None
        for dv in versions:
            ident = node(
                ids[dv.version],
                "data_version",
                operation=dv.operation,
                rows=dv.rows,
                run=dv.run_id,
                created_at=dv.created_at,
            )
            edge(table, ident, "defines", None)
            op = dv.operation.lower()
            if op in RESTORE_OPERATIONS:
                target = _rollback_target(dv, runs_by_id)
                if target is not None and target in ids and target != dv.version:
                    edge(ids[target], ident, "restored", dv.run_id)
                elif previous is not None:
                    edge(previous, ident, "parent", dv.run_id)
            elif op not in NO_PARENT_OPERATIONS and previous is not None:
                edge(previous, ident, "parent", dv.run_id)
            if include_runs and dv.run_id:
                edge(run_node(dv.run_id), ident, "wrote", dv.run_id)
            previous = ident

    for td in trainings:
        ident = node(
            f"training_dataset/{td.view}@v{td.major}/{td.number}",
            "training_dataset",
            rows=td.rows,
            run=td.run_id,
            created_at=td.created_at,
        )
        view = node(f"feature_view/{td.view}@v{td.major}", "feature_view")
        edge(view, ident, "materialized", td.run_id)
        for group, pin in sorted(td.pins.items()):
            pinned = (
                pin.get("identity") or f"feature_group/{group}@v{pin['major']}#{pin['version']}"
            )
            edge(mention(pinned), ident, "pinned", td.run_id)
        if include_runs and td.run_id:
            edge(run_node(td.run_id), ident, "wrote", td.run_id)
        # each part of a split is a node of its own, made from the whole set
        for part, about in (td.params or {}).get("split", {}).get("parts", {}).items():
            split = node(f"{ident}:{part}", "training_dataset", rows=about.get("rows"))
            edge(ident, split, "split", td.run_id)

    for m in models:
        ident = node(str(m.identity), "model", run=m.run_id, created_at=m.created_at)
        if m.training_dataset:
            edge(mention(m.training_dataset), ident, "trained_on", m.run_id)
        if include_runs and m.run_id:
            edge(run_node(m.run_id), ident, "wrote", m.run_id)

    served: dict[tuple[str, str], list[DeploymentRecord]] = {}
    for dep in sorted(deployments, key=lambda r: (r.name, r.at)):
        model = mention(dep.model)
        ident = node(str(dep.identity), "deployment", model=model, since=dep.at)
        served.setdefault((model, ident), []).append(dep)
    for (model, ident), history in served.items():
        edge(model, ident, "deployed", history[-1].run_id, {"at": [h.at for h in history]})

    for r in runs:
        if include_runs:
            ident = node(
                f"run/{r.id}",
                "run",
                job=r.kind,
                status=r.status,
                user=r.user,
                started_at=r.started_at,
                ended_at=r.ended_at,
            )
            for inp in r.inputs:
                edge(mention(inp), ident, "read", r.id)
            if r.status != "unchanged":
                for out in r.outputs:
                    edge(ident, mention(out), "wrote", r.id)
        elif r.status != "unchanged":
            for inp in r.inputs:
                source = mention(inp)
                for out in r.outputs:
                    edge(source, mention(out), "read", r.id)

    return graph._bulk_done(strict=strict)
