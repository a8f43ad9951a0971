"""The lineage port: node and edge kinds, the records lineage is built from, the sink protocol.

Everything here is pure (no I/O, no OpenLineage import), so the store can build
records and `DatasetInfo` without paying for the OpenLineage client until it emits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from featureledger.definitions.feature_view import FeatureView
from featureledger.definitions.identity import VersionId
from featureledger.errors import FeatureLedgerError, IdentityParseError

NodeKind = Literal[
    "source",
    "feature_group",
    "data_version",
    "feature_view",
    "training_dataset",
    "model",
    "deployment",
    "run",
    "entity",
]
#: every node kind, in upstream-to-downstream order (the order `Impact` lists them in)
NODE_KINDS: tuple[str, ...] = (
    "source",
    "entity",
    "feature_group",
    "data_version",
    "feature_view",
    "run",
    "training_dataset",
    "model",
    "deployment",
    "predictions",
)

EdgeKind = Literal[
    "defines",
    "parent",
    "restored",
    "read",
    "wrote",
    "selected",
    "materialized",
    "pinned",
    "trained_on",
    "deployed",
]
#: what each edge kind means, read as "TARGET <kind> SOURCE"
EDGE_KINDS: dict[str, str] = {
    "defines": "a data version was written under this feature group definition version",
    "parent": "a data version builds on the content of the previous version of its table",
    "restored": "a rollback version has the content of an older version",
    "read": "a run (or, without run nodes, its output) read this input",
    "wrote": "a run wrote this output",
    "selected": "a feature view selects features of this feature group definition version",
    "materialized": "a training dataset is a point-in-time join of this feature view version",
    "pinned": "a training dataset pins this data version",
    "trained_on": "a model was trained on this training dataset",
    "deployed": "a deployment served this model",
}


class LineageCycleError(FeatureLedgerError):
    """An edge was refused because it would close a cycle in the lineage DAG.

    ``path`` is the existing path from ``target`` back to ``source`` that the edge
    would have closed.
    """

    def __init__(self, source: str, target: str, kind: str, path: Sequence[str]) -> None:
        self.source = source
        self.target = target
        self.kind = kind
        self.path = list(path)
        loop = " -> ".join([*self.path, target]) if self.path else f"{source} -> {target}"
        super().__init__(
            f"lineage edge {source} -> {target} ({kind}) refused: it would make a cycle "
            f"({loop}). Lineage is a DAG: an artifact cannot depend on its own outputs. "
            "Check the run's recorded inputs and outputs; one of them names the wrong identity."
        )


def kind_of(identity: str) -> str:
    """The node kind of a printed identity.

    ``feature_group/x@v2`` is a definition (``feature_group``), ``feature_group/x@v2#17``
    a ``data_version``; ``run/<id>`` a run; anything that is not an identity (a path, a
    URI such as ``s3://bucket/raw.parquet``, or ``source/NAME``) is a ``source``.
    """
    head, _, rest = identity.partition("/")
    if head == "run" and rest:
        return "run"
    if head == "source" and rest:
        return "source"
    try:
        ident = VersionId.parse(identity)
    except IdentityParseError:
        return "source"
    if ident.kind == "feature_group" and ident.data is not None:
        return "data_version"
    return ident.kind


def canonical(identity: str | VersionId) -> str:
    """The one printed form of an identity (`VersionId` round trip); other strings stripped."""
    if isinstance(identity, VersionId):
        return str(identity)
    text = identity.strip()
    if text.startswith(("run/", "source/")):
        return text
    try:
        return str(VersionId.parse(text))
    except IdentityParseError:
        return text


# -- records the registry will hold -------------------------------------------------------------
@dataclass(frozen=True)
class ModelRecord:
    """A registered model version linked to the training dataset it was trained on."""

    name: str
    version: int
    training_dataset: str | None
    run_id: str | None = None
    created_at: datetime | None = None

    @property
    def identity(self) -> VersionId:
        return VersionId("model", self.name, number=self.version)


@dataclass(frozen=True)
class DeploymentRecord:
    """One move of a deployment pointer: from ``at`` on, ``name`` serves ``model``.

    A rollback of a deployment is simply a newer record pointing at an older model.
    """

    name: str
    model: str
    at: datetime
    run_id: str | None = None

    @property
    def identity(self) -> VersionId:
        return VersionId("deployment", self.name)


# -- what OpenLineage events say about one dataset ----------------------------------------------
#: a schema: a ``pyarrow.Schema``, ``{column: type}``, ``[(column, type), ...]`` or
#: ``[{"name": ..., "type": ..., "description": ...}, ...]``
SchemaLike = Any


@dataclass(frozen=True)
class DatasetInfo:
    """What featureledger knows about one input or output of a run, for its facets.

    ``column_lineage`` maps an output column to the input columns it was computed from,
    as ``(input identity, column)`` or ``(input identity, column, type, subtype)`` with
    OpenLineage's transformation type (``DIRECT``/``INDIRECT``) and subtype
    (``IDENTITY``, ``TRANSFORMATION``, ``AGGREGATION``, ``JOIN``, ``FILTER``, ...).
    ``column_metrics`` maps a column to data-quality metrics (``nullCount``,
    ``distinctCount``, ``sum``, ``count``, ``min``, ``max``, ``quantiles``) and
    ``assertions`` lists data-quality checks and their outcome (``assertion``, ``success``,
    optional ``column``, ``severity``, ``name``, ``description``); both go on inputs.
    """

    schema: SchemaLike = None
    content_hash: str | None = None
    schema_hash: str | None = None
    rows: int | None = None
    operation: str | None = None
    column_lineage: Mapping[str, Sequence[tuple[str, ...]]] | None = None
    column_metrics: Mapping[str, Mapping[str, Any]] | None = None
    description: str | None = None
    assertions: Sequence[Mapping[str, Any]] | None = None

    @classmethod
    def coerce(cls, value: DatasetInfo | Mapping[str, Any] | None) -> DatasetInfo:
        if value is None:
            return cls()
        if isinstance(value, DatasetInfo):
            return value
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(value) - known)
        if unknown:
            raise TypeError(f"DatasetInfo has no field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(value))


# -- sinks --------------------------------------------------------------------------------------
@runtime_checkable
class LineageSink(Protocol):
    """Where lineage events go: an OpenLineage transport, or memory in tests."""

    def emit(self, event: Any) -> None: ...


@dataclass
class MemorySink:
    """Keeps every event in ``events``; the sink tests (and the store's tests) use."""

    events: list[Any] = field(default_factory=list)

    def emit(self, event: Any) -> None:
        self.events.append(event)

    def close(self) -> bool:
        return True


@dataclass
class NullSink:
    """Drops every event: lineage emission turned off (``type: none``)."""

    def emit(self, event: Any) -> None:
        return None

    def close(self) -> bool:
        return True


def training_column_lineage(
    view: FeatureView, pins: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[tuple[str, str, str, str]]]:
    """Column lineage of a training dataset: each output feature column comes unchanged
    (``DIRECT``/``IDENTITY``) from its column in the pinned data version of its group.

    ``pins`` is `TrainingDatasetRecord.pins` (``{group: {"identity": ..., ...}}``).
    """
    out: dict[str, list[tuple[str, str, str, str]]] = {}
    for source in view.sources:
        pin = pins.get(source.group)
        if pin is None:
            continue
        for feature in source.features:
            out[view.output_name(source, feature)] = [
                (str(pin["identity"]), feature, "DIRECT", "IDENTITY")
            ]
    return out
