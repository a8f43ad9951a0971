"""Lineage: the DAG over identities, its queries and renderings, and OpenLineage events.

The graph, its renderings and the records are imported eagerly (pure Python); the
OpenLineage side (`run_events`, `emit_run`, `make_sink`, `OpenLineageSink`) is imported
on first use, so commands that never emit do not pay for the OpenLineage client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featureledger.lineage.base import (
    EDGE_KINDS,
    NODE_KINDS,
    DatasetInfo,
    DeploymentRecord,
    LineageCycleError,
    LineageSink,
    MemorySink,
    ModelRecord,
    NullSink,
    kind_of,
    training_column_lineage,
)
from featureledger.lineage.graph import Edge, Impact, Lineage, LineageGraph, Node, build_graph
from featureledger.lineage.render import FORMATS, render, render_impact, render_lineage

if TYPE_CHECKING:
    from featureledger.lineage.openlineage import (
        OpenLineageSink,
        emit_run,
        make_sink,
        run_events,
    )

_LAZY = {"OpenLineageSink", "emit_run", "make_sink", "run_events"}

__all__ = [
    "EDGE_KINDS",
    "FORMATS",
    "NODE_KINDS",
    "DatasetInfo",
    "DeploymentRecord",
    "Edge",
    "Impact",
    "Lineage",
    "LineageCycleError",
    "LineageGraph",
    "LineageSink",
    "MemorySink",
    "ModelRecord",
    "Node",
    "NullSink",
    "OpenLineageSink",
    "build_graph",
    "emit_run",
    "kind_of",
    "make_sink",
    "render",
    "render_impact",
    "render_lineage",
    "run_events",
    "training_column_lineage",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from featureledger.lineage import openlineage

        return getattr(openlineage, name)
    raise AttributeError(f"module 'featureledger.lineage' has no attribute {name!r}")
