"""Lineage query results as text (an indented tree), JSON, Graphviz DOT or Mermaid.

Every format shows the same subgraph: the nodes a `LineageGraph.lineage` query reaches
and the edges among them, edges always drawn downstream (input -> output).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Literal

from featureledger.definitions.identity import VersionId
from featureledger.lineage.base import NODE_KINDS
from featureledger.lineage.graph import Direction, Edge, Impact, Lineage, LineageGraph, sort_key

Format = Literal["text", "json", "dot", "mermaid"]
FORMATS: tuple[str, ...] = ("text", "json", "dot", "mermaid")
IMPACT_FORMATS: tuple[str, ...] = ("text", "json")
#: the text tree stops nesting here (a long chain of versions would otherwise print
#: quadratically many indentation characters); the other formats show everything
MAX_TEXT_LEVELS = 40

_KIND_RANK = {k: i for i, k in enumerate(NODE_KINDS)}

# Graphviz shape and fill per node kind
_DOT_STYLE = {
    "source": ("cylinder", "#eeeeee"),
    "entity": ("ellipse", "#ffffff"),
    "feature_group": ("tab", "#dbe9f6"),
    "data_version": ("box", "#dbe9f6"),
    "feature_view": ("component", "#e3f1df"),
    "run": ("ellipse", "#fff5d6"),
    "training_dataset": ("note", "#fde2cf"),
    "model": ("box3d", "#eadcf3"),
    "deployment": ("doubleoctagon", "#f6d5d5"),
}
# Mermaid node shape brackets per node kind
_MERMAID_SHAPE = {
    "source": ('[("', '")]'),
    "entity": ('("', '")'),
    "feature_group": ('["', '"]'),
    "data_version": ('["', '"]'),
    "feature_view": ('[["', '"]]'),
    "run": ('(["', '"])'),
    "training_dataset": ('[/"', '"/]'),
    "model": ('{{"', '"}}'),
    "deployment": ('(("', '"))'),
}


def render(
    graph: LineageGraph,
    root: str | VersionId,
    *,
    direction: Direction = "upstream",
    depth: int | None = None,
    format: Format = "text",
) -> str:
    """``featureledger lineage ROOT --upstream|--downstream --depth N --format F``."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    return render_lineage(graph, graph.lineage(root, direction, depth), format=format)


def render_lineage(graph: LineageGraph, result: Lineage, *, format: Format = "text") -> str:
    """Format an already computed `Lineage` (node kinds and attributes come from ``graph``)."""
    if format == "text":
        return _text(graph, result)
    if format == "json":
        return _json(graph, result)
    if format == "dot":
        return _dot(graph, result)
    if format == "mermaid":
        return _mermaid(graph, result)
    raise ValueError(f"format must be one of {FORMATS}, got {format!r}")


def render_impact(impact: Impact, *, format: Literal["text", "json"] = "text") -> str:
    """``featureledger impact ID``: what a bad ``impact.root`` affects, by kind."""
    if format == "json":
        return json.dumps(impact.to_dict(), indent=2)
    if format != "text":
        raise ValueError(f"format must be one of {IMPACT_FORMATS}, got {format!r}")
    total = len(impact)
    if not total:
        return f"{impact.root}: nothing downstream depends on it\n"
    lines = [f"{impact.root}: {total} dependent(s) affected if it is bad"]
    serving = set(impact.serving)
    for kind, items in impact.affected.items():
        lines.append(f"  {kind.replace('_', ' ')}s ({len(items)}):")
        for item in items:
            mark = "  <- serving an affected model now" if item in serving else ""
            lines.append(f"    {item}{mark}")
    return "\n".join(lines) + "\n"


# -- helpers -------------------------------------------------------------------------------------
def _ordered_nodes(result: Lineage) -> list[str]:
    return sorted(result.nodes, key=lambda n: (result.nodes[n], sort_key(n)))


def _note(graph: LineageGraph, ident: str) -> str:
    """A short annotation: what kind of write made a data version, what job a run was..."""
    node = graph.node(ident)
    a = node.attrs
    if node.kind == "data_version" and a.get("operation"):
        return str(a["operation"])
    if node.kind == "run":
        parts = [str(a[k]) for k in ("job", "status") if a.get(k)]
        return ", ".join(parts)
    if node.kind == "deployment" and a.get("model"):
        return f"serves {a['model']}"
    if node.kind == "training_dataset" and a.get("rows") is not None:
        return f"{a['rows']} rows"
    if node.kind == "source":
        return "source"
    return ""


def _evidence(edge: Edge) -> str:
    # a run's own read and wrote edges need no "run" evidence: the run is on the line
    run_node = f"run/{edge.run}"
    if edge.run and run_node not in (edge.source, edge.target):
        return f"{edge.kind}, run {edge.run[:8]}"
    return edge.kind


def _text(graph: LineageGraph, result: Lineage) -> str:
    upstream = result.direction == "upstream"
    # tree children of each node: its neighbours in the query's direction, among the result
    children: dict[str, list[tuple[str, Edge]]] = {n: [] for n in result.nodes}
    for e in result.edges:
        parent, child = (e.target, e.source) if upstream else (e.source, e.target)
        children[parent].append((child, e))
    for items in children.values():
        items.sort(key=lambda c: (_KIND_RANK.get(graph.node(c[0]).kind, 99), sort_key(c[0])))

    # first pass: which lines the tree holds, in depth-first order, each with its parent line
    entries: list[tuple[int, str]] = []  # (parent entry index or -1, text after the branch)
    expanded = {result.root}
    # a link already printed (same node, same evidence) says nothing new unless its lineage
    # unfolds here: a data-version chain would otherwise repeat "@v1 [defines]" at every level
    shown: set[tuple[str, str]] = set()
    repeated = cut = False
    omitted = 0
    # iterative depth-first walk; a node is expanded once, where it sits at its BFS distance
    stack = [(child, e, -1, 1) for child, e in reversed(children[result.root])]
    while stack:
        ident, via, parent_entry, level = stack.pop()
        parent = via.target if upstream else via.source
        on_tree = result.nodes[ident] == result.nodes[parent] + 1 and ident not in expanded
        evidence = _evidence(via)
        if (ident, evidence) in shown and not (on_tree and children[ident]):
            omitted += 1
            continue
        shown.add((ident, evidence))
        note = _note(graph, ident)
        text = f"{ident}  [{evidence}]" + (f"  ({note})" if note else "")
        if children[ident] and not on_tree:
            text += "  (*)"
            repeated = True
        elif children[ident] and level >= MAX_TEXT_LEVELS:
            text += "  (...)"
            cut = True
            on_tree = False
        entries.append((parent_entry, text))
        if on_tree:
            expanded.add(ident)
            here = len(entries) - 1
            stack += [(child, e, here, level + 1) for child, e in reversed(children[ident])]

    # second pass: draw the branches, now that each line knows whether it is its parent's last
    last_child: dict[int, int] = {}
    for i, (parent_entry, _) in enumerate(entries):
        last_child[parent_entry] = i
    note = _note(graph, result.root)
    lines = [result.root + (f"  ({note})" if note else "")]
    prefixes: list[str] = []
    for i, (parent_entry, text) in enumerate(entries):
        prefix = prefixes[parent_entry] if parent_entry >= 0 else ""
        last = last_child[parent_entry] == i
        lines.append(f"{prefix}{'└── ' if last else '├── '}{text}")
        prefixes.append(prefix + ("    " if last else "│   "))
    if repeated:
        lines.append(f"(*) its {result.direction} lineage is shown at another place in this tree")
    if omitted:
        lines.append(f"({omitted} link(s) printed above are not repeated; --format json has all)")
    if cut:
        lines.append(
            f"(...) the text tree stops at {MAX_TEXT_LEVELS} levels; use --depth from that "
            "node, or --format json, dot or mermaid for everything"
        )
    if result.depth is not None:
        lines.append(f"(depth limited to {result.depth})")
    return "\n".join(lines) + "\n"


def _json(graph: LineageGraph, result: Lineage) -> str:
    doc: dict[str, Any] = {
        "root": result.root,
        "direction": result.direction,
        "depth": result.depth,
        "nodes": [
            {
                "id": n,
                "kind": graph.node(n).kind,
                "distance": result.nodes[n],
                "attrs": dict(graph.node(n).attrs),
            }
            for n in _ordered_nodes(result)
        ],
        "edges": [e.to_dict() for e in result.edges],
    }
    return json.dumps(doc, indent=2, default=_json_value)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


def _dot_quote(text: str) -> str:
    # a label's line break is DOT's own "\n" escape, never a raw newline inside the string
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def _dot(graph: LineageGraph, result: Lineage) -> str:
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10, style=filled];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for n in _ordered_nodes(result):
        kind = graph.node(n).kind
        shape, fill = _DOT_STYLE.get(kind, ("box", "#ffffff"))
        note = _note(graph, n)
        label = n + (f"\n{note}" if note else "")
        extra = ", penwidth=2.5" if n == result.root else ""
        lines.append(
            f"  {_dot_quote(n)} [label={_dot_quote(label)}, shape={shape}, "
            f'fillcolor="{fill}"{extra}];'
        )
    for e in result.edges:
        lines.append(
            f"  {_dot_quote(e.source)} -> {_dot_quote(e.target)} [label={_dot_quote(e.kind)}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_label(text: str) -> str:
    # inside a quoted Mermaid label, entity codes escape what would end or confuse it
    return (
        text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )


def _mermaid(graph: LineageGraph, result: Lineage) -> str:
    ids = {n: f"n{i}" for i, n in enumerate(_ordered_nodes(result))}
    lines = ["flowchart LR"]
    kinds_used: set[str] = set()
    for n, nid in ids.items():
        kind = graph.node(n).kind
        kinds_used.add(kind)
        open_, close = _MERMAID_SHAPE.get(kind, ('["', '"]'))
        lines.append(f"  {nid}{open_}{_mermaid_label(n)}{close}:::{kind}")
    for e in result.edges:
        lines.append(f"  {ids[e.source]} -->|{e.kind}| {ids[e.target]}")
    for kind in sorted(kinds_used):
        _, fill = _DOT_STYLE.get(kind, ("box", "#ffffff"))
        lines.append(f"  classDef {kind} fill:{fill},stroke:#555")
    lines.append(f"  style {ids[result.root]} stroke-width:3px")
    return "\n".join(lines) + "\n"
