"""What the registry knows about a run's inputs and outputs, as `DatasetInfo` for its events.

`run_datasets(registry, run)` gathers, for each feature-group data version and training
dataset a run read or wrote: the schema (from the registered definition), the hashes, rows
and operation, the per-column statistics computed on write (null and distinct counts, min,
max), the contract results of the ingest that wrote the version, and a training dataset's
column lineage (group -> view -> training set, `training_column_lineage`). It only reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

from featureledger.definitions import FeatureGroup, FeatureView, VersionId
from featureledger.errors import FeatureLedgerError
from featureledger.lineage.base import DatasetInfo, training_column_lineage
from featureledger.registry import RegistryBackend, RunRecord


def run_datasets(registry: RegistryBackend, run: RunRecord) -> dict[str, DatasetInfo]:
    """`DatasetInfo` of every input and output of ``run`` the registry has a record of."""

    @cache
    def group(name: str, major: int) -> FeatureGroup | None:
        try:
            rec = registry.get_definition("feature_group", name, major)
        except FeatureLedgerError:
            return None
        return FeatureGroup.from_dict(rec.spec, rec.major)

    @cache
    def view(name: str, major: int) -> FeatureView | None:
        try:
            rec = registry.get_definition("feature_view", name, major)
        except FeatureLedgerError:
            return None
        return FeatureView.from_dict(rec.spec, rec.major)

    out: dict[str, DatasetInfo] = {}
    for ident in dict.fromkeys([*run.inputs, *run.outputs]):
        try:
            vid = VersionId.parse(ident)
        except FeatureLedgerError:
            continue  # file inputs and the like carry no registry record
        if vid.kind == "feature_group" and vid.data is not None:
            info = _data_version(registry, vid, group(vid.name, vid.major or 1))
        elif vid.kind == "training_dataset" and vid.number is not None:
            info = _training_dataset(registry, vid, view, group)
        else:
            continue
        if info is not None:
            out[ident] = info
    if run.kind == "pipeline":
        for ident in run.outputs:
            if ident in out:
                lineage = pipeline_column_lineage(run.params, run.inputs, out[ident])
                out[ident] = dataclasses.replace(out[ident], column_lineage=lineage or None)
    return out


def pipeline_column_lineage(
    params: Mapping[str, Any], inputs: list[str], output: DatasetInfo
) -> dict[str, list[tuple[str, str, str, str]]]:
    """Output column -> the columns of the pipeline's input it is computed from: a SQL
    transformation through sqlglot's column lineage (when sqlglot is installed), no
    transformation as each column unchanged. A Python function declares no inputs per
    column, so it has none."""
    transform = params.get("transform")
    if transform is None:
        names = [f["name"] for f in output.schema or []]
        return {n: [(i, n, "DIRECT", "IDENTITY") for i in inputs] for n in names}
    if transform.get("type") != "sql":
        return {}
    found = sql_column_lineage(str(transform["query"]), params.get("source_columns"))
    return {
        column: [(i, c, "DIRECT", subtype) for i in inputs for c in columns]
        for column, (columns, subtype) in found.items()
        if columns
    }


def sql_column_lineage(
    query: str, source_columns: list[str] | None = None
) -> dict[str, tuple[list[str], str]]:
    """Each output column of a DuckDB query over ``source``: the source columns it reads and
    OpenLineage's subtype (``IDENTITY``, ``TRANSFORMATION`` or ``AGGREGATION``); ``{}``
    when sqlglot is missing or cannot follow the query. ``source_columns`` (recorded by the
    run) resolves names an output alias shadows, as in ``... AS event_timestamp ... WHERE
    event_timestamp >= $start``."""
    try:
        from sqlglot import exp
        from sqlglot.lineage import lineage
    except ImportError:
        return {}
    try:
        schema = {"source": dict.fromkeys(source_columns, "UNKNOWN")} if source_columns else {}
        nodes = lineage(None, query, schema, dialect="duckdb")
    except Exception:  # sqlglot raises many kinds; lineage is a facet, not a gate
        return {}
    assert isinstance(nodes, dict)
    out: dict[str, tuple[list[str], str]] = {}
    for column, node in nodes.items():
        expr = node.expression.this if isinstance(node.expression, exp.Alias) else node.expression
        if isinstance(expr, exp.Column):
            subtype = "IDENTITY"
        elif expr.find(exp.AggFunc) is not None:
            subtype = "AGGREGATION"
        else:
            subtype = "TRANSFORMATION"
        read = {
            n.name.split(".")[-1]
            for n in node.walk()
            if not n.downstream and isinstance(n.expression, exp.Table)
        }
        out[str(column)] = (sorted(read), subtype)
    return out


def _schema(fg: FeatureGroup | None) -> list[dict[str, Any]] | None:
    if fg is None:
        return None
    return [
        {"name": f.name, "type": str(f.arrow_type), "description": f.description or None}
        for f in fg.columns
    ]


def _data_version(
    registry: RegistryBackend, vid: VersionId, fg: FeatureGroup | None
) -> DatasetInfo | None:
    dv = registry.data_version(vid.name, vid.major or 1, vid.data or 0)
    if dv is None:
        return None
    stats = registry.get_stats(str(vid))
    return DatasetInfo(
        schema=_schema(fg),
        content_hash=str(dv.content),
        schema_hash=dv.schema_hash,
        rows=dv.rows,
        operation=dv.operation,
        column_metrics=_column_metrics(stats) if stats else None,
        assertions=_assertions(registry, vid, dv.run_id) or None,
    )


def _column_metrics(stats_json: str) -> dict[str, dict[str, Any]]:
    """OpenLineage column metrics from the statistics JSON computed on write."""
    out: dict[str, dict[str, Any]] = {}
    doc = json.loads(stats_json)
    for column, s in (doc.get("columns") or {}).items():
        if not isinstance(s, Mapping):
            continue
        m: dict[str, Any] = {"nullCount": int(s.get("nulls", 0)), "count": float(s["count"])}
        if s.get("distinct") is not None:
            m["distinctCount"] = int(s["distinct"])
        # the facet's min and max are numbers; a text or time column's bounds are left out
        for key in ("min", "max"):
            value = s.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                m.update({key: float(value)} if math.isfinite(value) else {})
        quantiles = s.get("quantiles") or {}
        if quantiles and all(isinstance(v, int | float) for v in quantiles.values()):
            m["quantiles"] = {str(k): float(v) for k, v in quantiles.items()}
        out[str(column)] = m
    return out


def _assertions(
    registry: RegistryBackend, vid: VersionId, writer: str | None
) -> list[dict[str, Any]]:
    """The contract results of the ingest that wrote this data version (an ingest that
    wrote nothing new reports the same version, but did not make it)."""
    out = []
    for record in registry.validations(vid.name, vid.major or 1, vid.data):
        if record.run_id != writer:
            continue
        for result in record.report.get("results", []):
            columns = result.get("columns") or []
            out.append(
                {
                    "assertion": str(result.get("rule", "")),
                    "success": result.get("status") != "failed",
                    "column": columns[0] if len(columns) == 1 else None,
                    "severity": result.get("severity"),
                    "name": result.get("name"),
                    "description": result.get("message") or None,
                }
            )
    return out


def _training_dataset(
    registry: RegistryBackend,
    vid: VersionId,
    view: Any,
    group: Any,
) -> DatasetInfo | None:
    major = vid.major or 1
    record = next(
        (t for t in registry.training_datasets(vid.name, major) if t.number == vid.number), None
    )
    if record is None:
        return None
    fv: FeatureView | None = view(vid.name, major)
    lineage = training_column_lineage(fv, record.pins) if fv is not None else None
    types: dict[str, str] = {}
    if fv is not None:
        for source in fv.sources:
            pin = record.pins.get(source.group)
            fg = group(source.group, int(pin["major"])) if pin else None
            if fg is None:
                continue
            by_name = {f.name: f for f in fg.columns}
            for feature in source.features:
                if feature in by_name:
                    types[fv.output_name(source, feature)] = str(by_name[feature].arrow_type)
            for key in fg.key_fields:  # the entity frame's join keys (its time is the caller's)
                types.setdefault(source.join_key_map.get(key.name, key.name), str(key.arrow_type))
    return DatasetInfo(
        schema=[{"name": c, "type": types.get(c)} for c in record.columns],
        content_hash=str(record.content),
        rows=record.rows,
        column_lineage=lineage or None,
    )
