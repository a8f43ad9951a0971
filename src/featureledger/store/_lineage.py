"""Lineage queries over everything the registry recorded: ancestors, impact, renderings."""

from __future__ import annotations

from typing import Literal

from featureledger.lineage import (
    DeploymentRecord,
    Impact,
    LineageGraph,
    ModelRecord,
    build_graph,
    render,
    render_impact,
)
from featureledger.registry import RegistryBackend


class LineageService:
    """The lineage graph, built from the registry on each query."""

    def __init__(self, *, registry: RegistryBackend) -> None:
        self.registry = registry

    def lineage_graph(self, *, include_runs: bool = True) -> LineageGraph:
        """The DAG of sources, data versions, views, training sets, models, deployments."""
        reg = self.registry
        definitions = [
            d for kind in ("feature_group", "feature_view") for d in reg.definitions(kind)
        ]
        models = [
            ModelRecord(m.name, m.version, m.training_dataset, m.run_id, m.created_at)
            for m in reg.models()
        ]
        deployments = [
            DeploymentRecord(d.name, str(d.model_identity), d.at) for d in reg.deployments()
        ]
        training = [
            td
            for view in sorted({d.name for d in definitions if d.kind == "feature_view"})
            for td in reg.training_datasets(view)
        ]
        return build_graph(
            [*reg.all_data_versions(), *training, *reg.runs(), *definitions, *models, *deployments],
            include_runs=include_runs,
        )

    def lineage(
        self,
        identity: str,
        *,
        direction: Literal["upstream", "downstream"] = "upstream",
        depth: int | None = None,
        format: Literal["text", "json", "dot", "mermaid"] = "text",
        include_runs: bool = True,
    ) -> str:
        """Render what ``identity`` was made from (upstream) or what was made from it;
        ``include_runs=False`` leaves the runs out (they remain the edges' evidence)."""
        graph = self.lineage_graph(include_runs=include_runs)
        return render(graph, identity, direction=direction, depth=depth, format=format)

    def impact(self, identity: str) -> Impact:
        """The training sets, models and deployments affected if ``identity`` is bad."""
        return self.lineage_graph().impact(identity)

    def impact_report(self, identity: str, *, format: Literal["text", "json"] = "text") -> str:
        return render_impact(self.impact(identity), format=format)
