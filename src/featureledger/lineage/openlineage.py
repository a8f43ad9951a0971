"""Runs as OpenLineage RunEvents, and sinks over openlineage-python's own transports.

`run_events` turns one recorded run into its START and COMPLETE / FAIL / ABORT events,
built with the client's ``event_v2`` classes and facets; `make_sink` builds a
`LineageSink` from the ``lineage.transport`` mapping of featureledger.yaml;
`emit_run` does both. Mapping (see docs/lineage.md):

- job: namespace ``namespace``, name ``featureledger.<run kind>.<subject>``
  (``featureledger.ingest.user_stats``, ``featureledger.training_data.fraud``);
- dataset: an identity without its data version or number
  (``feature_group/user_stats@v2``), the version in the ``version`` facet, unless
  ``versioned_names``; sources follow OpenLineage's naming (``file`` + path,
  ``s3://bucket`` + key);
- facets: ``schema``, ``version``, ``columnLineage``, ``dataQualityMetrics`` and
  ``dataQualityAssertions`` (inputs),
  ``outputStatistics`` (outputs), ``jobType``, ``processing_engine``, ``nominalTime``,
  ``errorMessage``, and featureledger's own ``featureledger_run`` and
  ``featureledger_dataset`` (hashes, identity, parameters).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_input_dataset,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.transport import get_default_factory
from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from openlineage.client.transport.transport import Transport

from featureledger.definitions.identity import VersionId
from featureledger.errors import ConfigError
from featureledger.lineage.base import (
    DatasetInfo,
    LineageSink,
    NullSink,
    canonical,
    kind_of,
)

log = logging.getLogger("featureledger.lineage")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


FEATURELEDGER_VERSION = _version("featureledger")
OPENLINEAGE_VERSION = _version("openlineage-python")
#: the ``producer`` of every event and facet featureledger emits
PRODUCER = f"urn:featureledger:{FEATURELEDGER_VERSION}"
#: where featureledger's custom facet schemas are identified (an identifier, not a download:
#: the schemas are in docs/lineage.md and tests/lineage/schemas/)
FACET_SCHEMA_BASE = "urn:featureledger:spec:facets:1-0-0:"
#: default JSON-lines file of the ``file`` transport, relative to the repository
DEFAULT_EVENTS_PATH = ".featureledger/lineage/events.jsonl"

_TERMINAL = {
    "succeeded": RunState.COMPLETE,
    "unchanged": RunState.COMPLETE,
    "complete": RunState.COMPLETE,
    "failed": RunState.FAIL,
    "aborted": RunState.ABORT,
    "cancelled": RunState.ABORT,
}


# -- featureledger's custom facets --------------------------------------------------------------
@attr.define
class FeatureLedgerRunFacet(RunFacet):
    """What featureledger recorded about a run: its kind, status, hashes and parameters."""

    kind: str
    status: str
    user: str | None = attr.field(default=None)
    codeHash: str | None = attr.field(default=None)
    envHash: str | None = attr.field(default=None)
    params: dict[str, Any] | None = attr.field(factory=dict)
    #: the registry's run id when it is not a UUID (the event's runId is then derived)
    recordedRunId: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA_BASE + "FeatureLedgerRunFacet.json#/$defs/FeatureLedgerRunFacet"


@attr.define
class FeatureLedgerDatasetFacet(DatasetFacet):
    """The exact featureledger identity of a dataset version and its hashes."""

    identity: str
    kind: str
    contentHash: str | None = attr.field(default=None)
    schemaHash: str | None = attr.field(default=None)
    rows: int | None = attr.field(default=None)
    operation: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA_BASE + "FeatureLedgerDatasetFacet.json#/$defs/FeatureLedgerDatasetFacet"


# -- names ----------------------------------------------------------------------------------------
def dataset_name(
    identity: str, namespace: str, *, versioned: bool = False
) -> tuple[str, str, str | None]:
    """``(namespace, name, version)`` of the OpenLineage dataset for ``identity``.

    Versions of one table share a dataset (``feature_group/user_stats@v2``, version
    ``"17"``), as OpenLineage consumers such as Marquez expect; ``versioned=True``
    names each version on its own (``feature_group/user_stats@v2#17``).
    """
    ident = canonical(identity)
    kind = kind_of(ident)
    if kind == "source":
        if ident.startswith("source/"):
            return namespace, ident, None
        parsed = urlparse(ident)
        if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # "C:\..." too
            path = parsed.path if parsed.scheme == "file" else ident
            return "file", path, None
        return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/"), None
    if kind == "run":
        return namespace, ident, None
    vid = VersionId.parse(ident)
    version: str | None = None
    base = vid
    if vid.data is not None:
        version, base = str(vid.data), vid.without_data()
    elif vid.number is not None:
        version, base = str(vid.number), VersionId(vid.kind, vid.name, vid.major)
    return namespace, ident if versioned else str(base), version


def job_name(
    kind: str, params: Mapping[str, Any], inputs: Sequence[str], outputs: Sequence[str]
) -> str:
    """``featureledger.<kind>.<subject>``: the subject is the group, view, model or
    deployment the run is about, else the name in its first output or input."""
    subject = None
    for key in ("group", "view", "model", "deployment", "name"):
        if isinstance(params.get(key), str) and params[key]:
            subject = params[key]
            break
    if subject is None:
        for ident in [*outputs, *inputs]:
            if kind_of(ident) not in ("source", "run"):
                subject = VersionId.parse(canonical(ident)).name
                break
    return f"featureledger.{kind.replace('-', '_')}.{subject or 'run'}"


# -- events ----------------------------------------------------------------------------------------
def _get(run: Any, key: str, default: Any = None) -> Any:
    if isinstance(run, Mapping):
        return run.get(key, default)
    return getattr(run, key, default)


def _time(value: Any) -> str:
    if value is None:
        value = datetime.now(UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:  # the registry stores UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _run_uuid(run_id: str) -> tuple[str, str | None]:
    try:
        return str(uuid.UUID(run_id)), None
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"featureledger:run:{run_id}")), run_id


def _plain(value: Any) -> Any:
    """JSON-safe copy (datetimes and other objects as strings)."""
    return json.loads(json.dumps(value, default=str))


def _schema_fields(schema: Any) -> list[schema_dataset.SchemaDatasetFacetFields]:
    if hasattr(schema, "names") and hasattr(schema, "types"):  # pyarrow.Schema
        pairs: list[tuple[str, Any, Any]] = [
            (n, t, None) for n, t in zip(schema.names, schema.types, strict=True)
        ]
    elif isinstance(schema, Mapping):
        pairs = [(n, t, None) for n, t in schema.items()]
    else:
        pairs = []
        for item in schema:
            if isinstance(item, Mapping):
                pairs.append((item["name"], item.get("type"), item.get("description")))
            else:
                pairs.append((item[0], item[1] if len(item) > 1 else None, None))
    return [
        # no ordinal_position: openlineage-python < 1.40 does not know it; order is kept
        schema_dataset.SchemaDatasetFacetFields(
            name=str(n), type=None if t is None else str(t), description=d
        )
        for n, t, d in pairs
    ]


def _dataset_facets(
    identity: str, info: DatasetInfo, namespace: str, version: str | None, versioned: bool
) -> dict[str, Any]:
    facets: dict[str, Any] = {
        "featureledger_dataset": FeatureLedgerDatasetFacet(
            identity=identity,
            kind=kind_of(identity),
            contentHash=info.content_hash,
            schemaHash=info.schema_hash,
            rows=info.rows,
            operation=info.operation,
            producer=PRODUCER,
        )
    }
    if version is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=version, producer=PRODUCER
        )
    if info.schema is not None:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=_schema_fields(info.schema), producer=PRODUCER
        )
    if info.column_lineage:
        fields = {}
        for column, sources in info.column_lineage.items():
            inputs = []
            for source in sources:
                src_identity, src_field = source[0], source[1]
                kind = source[2] if len(source) > 2 else "DIRECT"
                subtype = source[3] if len(source) > 3 else "IDENTITY"
                ns, name, _ = dataset_name(src_identity, namespace, versioned=versioned)
                inputs.append(
                    column_lineage_dataset.InputField(
                        namespace=ns,
                        name=name,
                        field=src_field,
                        transformations=[
                            column_lineage_dataset.Transformation(type=kind, subtype=subtype)
                        ],
                    )
                )
            fields[column] = column_lineage_dataset.Fields(inputFields=inputs)
        facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
            fields=fields, producer=PRODUCER
        )
    return facets


def _input(identity: str, info: DatasetInfo, namespace: str, versioned: bool) -> InputDataset:
    ns, name, version = dataset_name(identity, namespace, versioned=versioned)
    input_facets: dict[str, Any] = {}
    if info.column_metrics is not None or info.rows is not None:
        input_facets["dataQualityMetrics"] = (
            data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
                columnMetrics={
                    col: data_quality_metrics_input_dataset.ColumnMetrics(**dict(m))
                    for col, m in (info.column_metrics or {}).items()
                },
                rowCount=info.rows,
                producer=PRODUCER,
            )
        )
    if info.assertions:
        input_facets["dataQualityAssertions"] = (
            data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                assertions=[
                    data_quality_assertions_dataset.Assertion(
                        **{k: v for k, v in dict(a).items() if v is not None}
                    )
                    for a in info.assertions
                ],
                producer=PRODUCER,
            )
        )
    return InputDataset(
        namespace=ns,
        name=name,
        facets=_dataset_facets(identity, info, namespace, version, versioned),
        inputFacets=input_facets,
    )


def _output(identity: str, info: DatasetInfo, namespace: str, versioned: bool) -> OutputDataset:
    ns, name, version = dataset_name(identity, namespace, versioned=versioned)
    output_facets: dict[str, Any] = {}
    if info.rows is not None:
        output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=info.rows, producer=PRODUCER
            )
        )
    return OutputDataset(
        namespace=ns,
        name=name,
        facets=_dataset_facets(identity, info, namespace, version, versioned),
        outputFacets=output_facets,
    )


def run_events(
    run: Any,
    *,
    namespace: str = "featureledger",
    datasets: Mapping[str, DatasetInfo | Mapping[str, Any]] | None = None,
    versioned_names: bool = False,
    producer: str | None = None,
) -> list[RunEvent]:
    """The OpenLineage events of one run: START, then COMPLETE, FAIL or ABORT once it ended.

    ``run`` is a `RunRecord` or a mapping with its fields (``id``, ``kind``, ``status``,
    ``started_at``, ``ended_at``, ``inputs``, ``outputs``, ``params``, ``code_hash``,
    ``env_hash``, ``error``, ``user``). ``datasets`` maps an input or output identity to
    what is known about it (schema, hashes, rows, column lineage, column metrics). A
    run still ``running`` yields only its START event.
    """
    producer = producer or PRODUCER
    datasets = datasets or {}
    info = {canonical(k): DatasetInfo.coerce(v) for k, v in datasets.items()}
    run_id, recorded = _run_uuid(str(_get(run, "id")))
    kind = str(_get(run, "kind", "run"))
    status = str(_get(run, "status", "running"))
    params = dict(_get(run, "params") or {})
    inputs = [canonical(i) for i in _get(run, "inputs") or []]
    outputs = [canonical(o) for o in _get(run, "outputs") or []]

    run_facets: dict[str, Any] = {
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version=FEATURELEDGER_VERSION,
            name="featureledger",
            openlineageAdapterVersion=OPENLINEAGE_VERSION,
            producer=producer,
        ),
        "featureledger_run": FeatureLedgerRunFacet(
            kind=kind,
            status=status,
            user=_get(run, "user"),
            codeHash=_get(run, "code_hash") or None,
            envHash=_get(run, "env_hash") or None,
            params=_plain(params),
            recordedRunId=recorded,
            producer=producer,
        ),
    }
    if params.get("start") is not None:
        # not a time window if it does not parse; the parameters are in featureledger_run anyway
        with contextlib.suppress(TypeError, ValueError):
            run_facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=_time(params["start"]),
                nominalEndTime=_time(params["end"]) if params.get("end") is not None else None,
                producer=producer,
            )
    job = Job(
        namespace=namespace,
        name=job_name(kind, params, inputs, outputs),
        facets={
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH",
                integration="FEATURELEDGER",
                jobType=kind.upper().replace("-", "_"),
                producer=producer,
            )
        },
    )

    def datasets_in() -> list[InputDataset]:
        return [_input(i, info.get(i, DatasetInfo()), namespace, versioned_names) for i in inputs]

    events = [
        RunEvent(
            eventType=RunState.START,
            eventTime=_time(_get(run, "started_at")),
            run=Run(runId=run_id, facets=run_facets),
            job=job,
            inputs=datasets_in(),
            outputs=[],
            producer=producer,
        )
    ]
    state = _TERMINAL.get(status)
    if state is None:
        return events
    end_facets = dict(run_facets)
    if state is RunState.FAIL:
        end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=str(_get(run, "error") or "failed"),
            programmingLanguage="PYTHON",
            producer=producer,
        )
    events.append(
        RunEvent(
            eventType=state,
            eventTime=_time(_get(run, "ended_at")),
            run=Run(runId=run_id, facets=end_facets),
            job=job,
            inputs=datasets_in(),
            outputs=[
                _output(o, info.get(o, DatasetInfo()), namespace, versioned_names) for o in outputs
            ],
            producer=producer,
        )
    )
    return events


# -- sinks -----------------------------------------------------------------------------------------
class OpenLineageSink:
    """A `LineageSink` over one openlineage-python `Transport`."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def emit(self, event: Any) -> None:
        self.transport.emit(event)

    def close(self) -> bool:
        return bool(self.transport.close())

    def __repr__(self) -> str:
        return f"OpenLineageSink({self.transport})"


_KEYS = {
    "file": {"path"},
    "console": set(),
    "http": {
        "url",
        "endpoint",
        "timeout",
        "retries",
        "api_key",
        "api_key_env",
        "compression",
        "verify",
        "headers",
    },
    "none": set(),
}


def make_sink(config: Mapping[str, Any] | None = None, *, repo: str | Path = ".") -> LineageSink:
    """The sink for the ``lineage.transport`` mapping of featureledger.yaml.

    - ``{"type": "file", "path": ...}`` (the default; path relative to ``repo``, default
      ``.featureledger/lineage/events.jsonl``): one JSON event per line, appended;
    - ``{"type": "console"}``: each event logged as JSON at INFO on the
      ``openlineage.client.transport.console`` logger (to stderr unless logging is set up);
    - ``{"type": "http", "url": ..., "endpoint": "api/v1/lineage", "timeout": 5,
      "retries": 2, "api_key_env": NAME | "api_key": ..., "compression": "gzip",
      "verify": true, "headers": {...}}``: POST to an OpenLineage endpoint such as Marquez;
    - ``{"type": "none"}``: nothing is emitted (also when OPENLINEAGE_DISABLED=true);
    - any other ``type`` (``kafka``, ``composite``, ``async_http``, ...) is handed with its
      keys, unchanged, to openlineage-python's transport factory.
    """
    cfg = dict(config or {})
    kind = str(cfg.pop("type", "file"))
    if os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return NullSink()
    if kind in _KEYS:
        unknown = sorted(set(cfg) - _KEYS[kind])
        if unknown:
            raise ConfigError(
                f"lineage.transport of type {kind!r}: unknown key(s) {unknown}; "
                f"known: {sorted(_KEYS[kind]) or 'none'}"
            )
    if kind == "none":
        return NullSink()
    if kind == "file":
        path = Path(cfg.get("path") or DEFAULT_EVENTS_PATH)
        if not path.is_absolute():
            path = Path(repo) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return OpenLineageSink(FileTransport(FileConfig(log_file_path=str(path), append=True)))
    if kind == "console":
        _show_console_events()
        return OpenLineageSink(ConsoleTransport(ConsoleConfig()))
    if kind == "http":
        if not cfg.get("url"):
            raise ConfigError(
                "lineage.transport of type 'http' needs a url, e.g. http://localhost:5000 "
                "for Marquez"
            )
        params: dict[str, Any] = {
            "url": str(cfg["url"]),
            "endpoint": str(cfg.get("endpoint", "api/v1/lineage")),
            "timeout": float(cfg.get("timeout", 5.0)),
            "verify": bool(cfg.get("verify", True)),
            # openlineage-python retries 5 times by default; a run waits for its events,
            # so keep a dead endpoint's cost to about a second
            "retry": {
                "total": int(cfg.get("retries", 2)),
                "connect": int(cfg.get("retries", 2)),
                "read": int(cfg.get("retries", 2)),
            },
        }
        api_key = cfg.get("api_key")
        if cfg.get("api_key_env"):
            api_key = os.environ.get(str(cfg["api_key_env"]))
            if not api_key:
                raise ConfigError(
                    f"lineage.transport: environment variable {cfg['api_key_env']} "
                    "(api_key_env) is not set"
                )
        if api_key:
            params["auth"] = {"type": "api_key", "apiKey": str(api_key)}
        if cfg.get("compression"):
            params["compression"] = str(cfg["compression"])
        if cfg.get("headers"):
            if "custom_headers" not in {f.name for f in attr.fields(HttpConfig)}:
                raise ConfigError(
                    "lineage.transport: headers need openlineage-python >= 1.24, found "
                    f"{OPENLINEAGE_VERSION}; upgrade it or remove the headers"
                )
            params["custom_headers"] = {str(k): str(v) for k, v in cfg["headers"].items()}
        try:
            return OpenLineageSink(HttpTransport(HttpConfig.from_dict(params)))
        except (ValueError, KeyError, RuntimeError) as exc:
            raise ConfigError(f"lineage.transport of type 'http': {exc}") from exc
    try:
        return OpenLineageSink(get_default_factory().create({"type": kind, **cfg}))
    except Exception as exc:
        raise ConfigError(
            f"lineage.transport of type {kind!r} could not be created by openlineage-python: "
            f"{exc}. Use file, console, http or none, or a transport type openlineage-python "
            "knows (kafka, composite, async_http, ...) with its keys."
        ) from exc


def _show_console_events() -> None:
    # ConsoleTransport logs at INFO, which Python drops unless logging is configured
    logger = logging.getLogger("openlineage.client.transport.console")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def emit_run(
    sink: LineageSink,
    run: Any,
    *,
    namespace: str = "featureledger",
    datasets: Mapping[str, DatasetInfo | Mapping[str, Any]] | None = None,
    versioned_names: bool = False,
    strict: bool = False,
) -> list[RunEvent]:
    """Build `run_events` for ``run`` and emit them; returns the events.

    Emission is best effort: the registry, not the event stream, is the record, so an
    unreachable endpoint logs a warning on the ``featureledger.lineage`` logger and
    returns instead of failing the run (``strict=True`` raises).
    """
    events = run_events(
        run, namespace=namespace, datasets=datasets, versioned_names=versioned_names
    )
    for event in events:
        try:
            sink.emit(event)
        except Exception as exc:
            if strict:
                raise
            log.warning(
                "lineage event %s of run %s was not emitted through %r: %s",
                event.eventType.value if event.eventType else "?",
                _get(run, "id"),
                sink,
                exc,
            )
            break
    return events


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events a ``file`` transport wrote, as JSON objects, oldest first."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def event_dict(event: RunEvent) -> dict[str, Any]:
    """An event as the JSON object transports send."""
    from openlineage.client.serde import Serde

    return Serde.to_dict(event)
