"""The lineage graph page (drawn by Cytoscape.js in the browser) and the impact page.

The whole graph of a large repository (10,000 data versions, their runs) is no picture, so
the page draws either the neighbourhood of one identity (``focus``, ``depth`` steps up and
down, or only downstream for the impact view) or, without a focus, the map of definitions:
sources, groups, views, training sets, models and deployments. Either is capped at
`MAX_NODES` nodes; the page says when it cut."""

from __future__ import annotations

import threading
import time
from typing import Any

from starlette.responses import Response

from featureledger.lineage.graph import LineageGraph, sort_key
from featureledger.ui._render import BadInput, Ctx, href, page

MAX_NODES = 400
#: node kinds of the map drawn without a focus
MAP_KINDS = ("source", "feature_group", "feature_view", "training_dataset", "model", "deployment")
#: how long one built graph is reused by the pages of this process (a graph of 10,000 data
#: versions takes about a second to build; a page must not rebuild it per click)
GRAPH_SECONDS = 5.0


class GraphCache:
    """Built graphs of one UI app's store, reused for `GRAPH_SECONDS` (held by the app, not
    the module: a module-wide cache keyed by ``id(store)`` could serve another store that
    got the same id)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.graphs: dict[bool, tuple[float, LineageGraph]] = {}

    def get(self, store: Any, include_runs: bool) -> LineageGraph:
        now = time.monotonic()
        with self.lock:
            hit = self.graphs.get(include_runs)
            if hit is not None and hit[0] > now:
                return hit[1]
        graph: LineageGraph = store.lineage_graph(include_runs=include_runs)
        with self.lock:
            self.graphs[include_runs] = (now + GRAPH_SECONDS, graph)
        return graph


def lineage_graph(ctx: Ctx, *, include_runs: bool) -> LineageGraph:
    cache: GraphCache = ctx.request.app.state.graphs
    return cache.get(ctx.store, include_runs)


def label(identity: str, kind: str) -> str:
    if kind == "run":
        return "run " + identity.removeprefix("run/")[:8]
    head, _, rest = identity.partition("/")
    return rest or head


def elements(ctx: Ctx, graph: LineageGraph, nodes: list[str], focus: str | None) -> dict[str, Any]:
    """Cytoscape's input: nodes with their kind, label and page; edges among them."""
    chosen = set(nodes)
    out_nodes = []
    for ident in nodes:
        kind = graph.node(ident).kind
        out_nodes.append(
            {
                "id": ident,
                "kind": kind,
                "label": label(ident, kind),
                "href": href(ctx.root, ident),
                "focus": ident == focus,
            }
        )
    edges = [
        {"id": f"{e.source}->{e.target}", "source": e.source, "target": e.target, "kind": e.kind}
        for e in graph.edges()
        if e.source in chosen and e.target in chosen
    ]
    return {"nodes": out_nodes, "edges": edges}


@page("/lineage", nav="Lineage")
def lineage(ctx: Ctx) -> Response:
    focus = ctx.arg("focus").strip() or None
    direction = ctx.arg("direction", "both")
    if direction not in ("both", "upstream", "downstream"):
        raise BadInput(f"direction={direction!r} must be both, upstream or downstream")
    depth = ctx.int_arg("depth", 2)
    if depth is not None and not 1 <= depth <= 20:
        raise BadInput(f"depth={depth} must be between 1 and 20")
    runs = ctx.arg("runs", "0") == "1"
    graph = lineage_graph(ctx, include_runs=runs)
    if focus is not None:
        if focus not in graph:
            raise BadInput(
                f"{focus!r} is not in the lineage graph; give an identity such as "
                "feature_group/NAME@v1#3 or feature_view/NAME@v1"
            )
        reach: dict[str, int] = {focus: 0}
        if direction in ("both", "upstream"):
            reach.update(graph.ancestors(focus, depth))
        if direction in ("both", "downstream"):
            reach.update(graph.descendants(focus, depth))
        nodes = sorted(reach, key=lambda n: (reach[n], sort_key(n)))
    else:
        nodes = sorted((n for n in graph.nodes() if graph.node(n).kind in MAP_KINDS), key=sort_key)
    total = len(nodes)
    data = elements(ctx, graph, nodes[:MAX_NODES], focus)
    return ctx.render(
        "lineage.html",
        data=data,
        focus=focus,
        direction=direction,
        depth=depth,
        runs=runs,
        total=total,
        cut=total > MAX_NODES,
        max_nodes=MAX_NODES,
    )


@page("/impact", nav="Impact")
def impact(ctx: Ctx) -> Response:
    identity = ctx.arg("identity").strip()
    # what `store.impact` computes, over the graph the lineage pages reuse (built with runs,
    # as `store.impact` builds it): one graph of 10,000 versions takes seconds to build
    result = lineage_graph(ctx, include_runs=True).impact(identity) if identity else None
    return ctx.render("impact.html", identity=identity, impact=result)
