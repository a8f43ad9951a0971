"""Point-in-time correct training data, pinned to data versions."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featureledger.config import RepoConfig
from featureledger.contracts.licenses import license_problems, license_table
from featureledger.definitions import (
    FeatureGroup,
    FeatureView,
    FileSource,
    GroupSource,
    VersionId,
    ViewSource,
)
from featureledger.definitions.contract import format_duration
from featureledger.definitions.split import Split
from featureledger.errors import (
    CoverageError,
    CoverageWarning,
    DataError,
    DefinitionError,
    LicenseError,
    NotFoundError,
    SchemaMismatchError,
    StorageError,
)
from featureledger.hashing import ContentHash, content_hash, definition_hash
from featureledger.offline import ROW_COLUMN, PitSource
from featureledger.offline.base import OfflineEngine, WorkerWriter
from featureledger.offline.conform import NaivePolicy, conform_entities, to_arrow
from featureledger.registry import RegistryBackend, TrainingDatasetRecord
from featureledger.store._catalog import Catalog
from featureledger.store._files import StoreFiles
from featureledger.store._records import VersionRecords
from featureledger.store._runs import Runs
from featureledger.store._splits import (
    assign,
    check_part,
    choose_gap,
    describe_parts,
    part_names,
    part_rows,
)
from featureledger.store._tables import Tables
from featureledger.transforms.on_demand import apply_on_demand, output_fields
from featureledger.versioning.provenance import (
    code_provenance,
    current_user,
    pipeline_environment,
)


@dataclass
class TrainingData:
    """The result of `FeatureStore.training_data`: rows plus the record that pins them.

    A split training set has parts (`parts`, `part`); one part is a `TrainingData` too,
    with its own identity (``training_dataset/fraud@v1/3:test``), rows and hash.
    `features`, `label` and `helpers` give the columns apart.
    """

    record: TrainingDatasetRecord
    _table: pa.Table | None = None
    #: reads the kept output (a local path or an object-store URI)
    _read: Callable[[str], pa.Table] = field(default=pq.read_table, repr=False)
    #: the part of the record these rows are (None: the whole set)
    split: str | None = None
    #: builds the `TrainingData` of one part
    _part: Callable[[TrainingDatasetRecord, str], TrainingData] | None = field(
        default=None, repr=False
    )

    @property
    def identity(self) -> VersionId:
        ident = self.record.identity
        return ident if self.split is None else replace(ident, split=self.split)

    def to_arrow(self) -> pa.Table:
        if self._table is None:
            assert self.record.output_path is not None
            self._table = read_kept(self._read, self.record.output_path)
        return self._table

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def __len__(self) -> int:
        if self.split is not None:
            return int(self.record.params["split"]["parts"][self.split]["rows"])
        return self.record.rows

    @property
    def content(self) -> str:
        """The content hash of these rows (of the part, for a part)."""
        if self.split is not None:
            return str(self.record.params["split"]["parts"][self.split]["content"])
        return str(self.record.content)

    @property
    def parts(self) -> list[str]:
        """The names of the split's parts (empty when built without ``split=``)."""
        return part_names(self.record)

    def part(self, name: str) -> TrainingData:
        """One part of the split, e.g. ``td.part("test")``."""
        check_part(self.record, name)
        if self._part is None:
            return TrainingData(
                self.record, part_rows(self.record, self.whole_rows(), name), self._read, name
            )
        return self._part(self.record, name)

    def whole_rows(self) -> pa.Table:
        if self.split is None:
            return self.to_arrow()
        assert self.record.output_path is not None
        return read_kept(self._read, self.record.output_path)

    @property
    def feature_names(self) -> list[str]:
        """The columns fed to the model: the view's features and on-demand outputs, less
        the label and the helper columns."""
        return list(self.record.params.get("features", []))

    @property
    def label_name(self) -> str | None:
        return self.record.params.get("label")

    @property
    def helper_names(self) -> list[str]:
        return list(self.record.params.get("helpers", []))

    def features(self) -> pa.Table:
        return self.to_arrow().select(self.feature_names)

    def label(self) -> pa.ChunkedArray:
        if self.label_name is None:
            raise NotFoundError(f"{self.identity} has no label; pass label= to training_data")
        return self.to_arrow().column(self.label_name)

    def helpers(self) -> pa.Table:
        return self.to_arrow().select(self.helper_names)

    @property
    def warnings(self) -> list[str]:
        """Coverage warnings recorded with the set: input groups with no rows, or none at
        some of the entity frame's times (their features are null there)."""
        return list(self.record.params.get("warnings", []))


def read_kept(read: Callable[[str], pa.Table], path: str) -> pa.Table:
    """A kept training set's rows, in the entity frame's order."""
    table = read(path)
    if ROW_COLUMN in table.column_names:
        # written by an engine's workers (`WorkerWriter`): restore the entity order,
        # and the plain types of Daft's large ones (the same values, the same hash)
        table = table.sort_by(ROW_COLUMN).drop_columns([ROW_COLUMN])
        table = table.cast(pa.schema([f.with_type(_plain(f.type)) for f in table.schema]))
    return table


def view_definition_hash(fv: FeatureView) -> str:
    """The hash of what a view selects and how (its transforms' code is hashed apart)."""
    return definition_hash({k: v for k, v in fv.to_dict().items() if k != "on_demand"})


def view_provenance(fv: FeatureView) -> dict[str, Any]:
    """The view's definition hash, the code of its on-demand transforms (hash, parts,
    location) and the environment they run in, as a training-data run records them."""
    code = code_provenance({f"on-demand {o.name}": o.function for o in fv.on_demand})
    return {
        "view_definition": view_definition_hash(fv),
        **code,
        "environment": pipeline_environment(code["imports"]),
    }


def _plain(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_large_list(t):
        return pa.list_(_plain(t.value_type))
    return t


def _keep_entities(entities: pa.Table, uri: str, files: StoreFiles) -> ContentHash:
    """Write the entity frame for reproduction; its hash covers the row order too."""
    files.write_parquet(entities.drop_columns([ROW_COLUMN]), uri)
    return content_hash(entities)


@dataclass(frozen=True)
class _JoinPlan:
    """A checked entity frame and the pinned snapshots it will be joined with."""

    entities: pa.Table
    timestamp_column: str | None
    sources: list[PitSource]
    pins: dict[str, dict[str, Any]]
    schema: pa.Schema
    #: the view's on-demand transforms, applied to every joined batch
    on_demand: tuple[Any, ...] = ()
    where: str = ""
    #: the entity frame's join key columns
    keys: tuple[str, ...] = ()


class TrainingService:
    """Point-in-time joins into recorded, pinned training datasets."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        engine: OfflineEngine,
        tables: Tables,
        catalog: Catalog,
        records: VersionRecords,
        runs: Runs,
        config: RepoConfig,
        repo: Path,
        naive: NaivePolicy,
        files: StoreFiles,
    ) -> None:
        self.files = files
        self.registry = registry
        self.engine = engine
        self.tables = tables
        self.catalog = catalog
        self.records = records
        self.runs = runs
        self.config = config
        self.repo = repo
        self._naive = naive
        #: called with every recorded training dataset and its rows when in memory
        self.listeners: list[Callable[[TrainingDatasetRecord, pa.Table | None], None]] = []
        #: called with the pinned data versions before the run's completion is recorded, so
        #: that its lineage event can describe them (their statistics may still be computing)
        self.before_finish: list[Callable[[list[str]], None]] = []

    def record(self, ident: VersionId | TrainingData | str) -> TrainingDatasetRecord:
        if isinstance(ident, TrainingData):
            ident = ident.identity
        elif isinstance(ident, str):
            ident = VersionId.parse(ident)
        records = self.registry.training_datasets(ident.name, ident.major)
        if ident.number is not None:
            records = [r for r in records if r.number == ident.number]
        if not records:
            raise NotFoundError(f"{ident} is not recorded")
        if ident.split is not None:
            check_part(records[-1], ident.split)
        return records[-1]

    def rows(self, record: TrainingDatasetRecord, split: str | None = None) -> pa.Table:
        """A training dataset's rows (or one part's): its output file when kept, else
        rebuilt from its pins."""
        if record.output_path and self.files.exists(record.output_path):
            rows = read_kept(self.files.read_parquet, record.output_path)
        else:
            rebuilt, _ = self.rebuild(record, None)
            assert rebuilt is not None
            rows = rebuilt
        return rows if split is None else part_rows(record, rows, split)

    def training_set(self, ident: VersionId | TrainingData | str) -> TrainingData:
        """A recorded training dataset, or one part of it (``...:test``), by identity."""
        if isinstance(ident, TrainingData):
            return ident
        parsed = VersionId.parse(ident) if isinstance(ident, str) else ident
        record = self.record(parsed)
        if parsed.split is not None:
            return self._part(record, parsed.split)
        kept = record.output_path is not None and self.files.exists(record.output_path)
        return TrainingData(
            record, None if kept else self.rows(record), self.files.read_parquet, None, self._part
        )

    def _part(self, record: TrainingDatasetRecord, name: str) -> TrainingData:
        return TrainingData(record, self.rows(record, name), self.files.read_parquet, name)

    def rebuild(
        self, record: TrainingDatasetRecord, output: str | Path | None
    ) -> tuple[pa.Table | None, ContentHash]:
        fv = self.catalog.get_feature_view(record.view, record.major)
        entities = self.files.read_parquet(record.entity_path)
        versions = {g: p["version"] for g, p in record.pins.items()}
        join = self.plan_join(
            fv, entities, record.params.get("timestamp_column", "event_timestamp"), versions, None
        )
        return self.run_join(join, output)

    def training_data(
        self,
        view: str | FeatureView,
        entity_df: Any,
        *,
        timestamp_column: str = "event_timestamp",
        version: int | None = None,
        versions: Mapping[str, int] | None = None,
        as_of: datetime | None = None,
        output: str | Path | None = None,
        strict: bool = False,
        split: Split | str | None = None,
        label: str | None = None,
        helpers: Sequence[str] = (),
    ) -> TrainingData:
        """Point-in-time correct features for each row of ``entity_df``.

        Each input group is pinned to a data version: ``versions[group]`` if given, else
        the version current ``as_of``, else the latest. The result keeps the entity rows'
        order and count. It is recorded as a training dataset with its pins and hashes;
        with ``output`` it is streamed to that Parquet file instead of held in memory.

        An input version with no rows, or entity times before its first event time (or
        after its last plus the TTL), gives null features: that is warned about
        (`CoverageWarning`, kept in the record), and refused with ``strict``
        (`CoverageError`, nothing recorded).

        ``label`` names the label column and ``helpers`` (with the view's) columns kept
        but not fed to the model; ``split`` (a `Split` or its text form) records parts
        with their own identities and hashes (docs/models.md).
        """
        fv = self.catalog.get_feature_view(view, version)
        vmajor = fv.version or 1
        spec = Split.parse(split) if isinstance(split, str) else split
        join = self.plan_join(fv, entity_df, timestamp_column, versions, as_of)
        groups = {s.group: self.catalog.get_feature_group(s.group, s.major) for s in fv.sources}
        roles = column_roles(join, fv, label, helpers)
        gaps = coverage(join, groups, self.tables, self.registry)
        if gaps and strict:
            raise CoverageError(join.where, gaps)
        for gap in gaps:
            warnings.warn(CoverageWarning(f"{join.where}: {gap}"), stacklevel=3)
        user = current_user()
        run = self.runs.start(
            "training-data",
            user,
            {
                "view": fv.name,
                "major": vmajor,
                "rows": join.entities.num_rows,
                "timestamp_column": timestamp_column,
                # what `reproduce` compares: the view's code and the environment
                **view_provenance(fv),
            },
            inputs=[p["identity"] for p in join.pins.values()],
        )
        try:
            entity_path = self.files.training_uri(fv.name, vmajor, f"entities-{run.id}.parquet")
            # the entity frame is hashed and written while DuckDB joins, which releases the
            # GIL and leaves part of the cores idle (size l: 0.1 s less)
            with ThreadPoolExecutor(1) as pool:
                kept = pool.submit(_keep_entities, join.entities, entity_path, self.files)
                result, total = self.run_join(join, output)
                entity_hash = kept.result()
            parts: dict[str, Any] = {}
            if spec is not None:
                rows = result
                if rows is None:
                    assert output is not None
                    rows = read_kept(self.files.read_parquet, self.files.output_uri(output))
                minimum = max((g.ttl for g in groups.values() if g.ttl), default=timedelta(0))
                split_gap = choose_gap(spec, minimum, join.where)
                assigned = assign(
                    rows,
                    spec,
                    label=label,
                    keys=join.keys,
                    timestamp_column=join.timestamp_column,
                    gap=split_gap,
                    where=join.where,
                )
                parts = {"split": describe_parts(rows, spec, assigned, split_gap, minimum)}
            td_record = self.registry.add_training_dataset(
                TrainingDatasetRecord(
                    view=fv.name,
                    major=vmajor,
                    number=0,
                    pins=join.pins,
                    entity_hash=str(entity_hash),
                    content=total,
                    rows=total.rows,
                    columns=[*join.schema.names, *(f.name for f in output_fields(join.on_demand))],
                    entity_path=entity_path,
                    output_path=self.files.output_uri(output) if output else None,
                    run_id=run.id,
                    user=user,
                    created_at=datetime.now(UTC),
                    params={
                        "timestamp_column": timestamp_column,
                        "as_of": as_of.isoformat() if as_of else None,
                        **({"warnings": gaps} if gaps else {}),
                        **roles,
                        **parts,
                    },
                )
            )
        except Exception as exc:
            self.runs.finish(run.id, "failed", [], error=f"{type(exc).__name__}: {exc}")
            raise
        for hook in self.before_finish:
            hook([str(p["identity"]) for p in join.pins.values()])
        self.runs.finish(run.id, "succeeded", [str(td_record.identity)])
        self.registry.audit(
            user,
            "training-data",
            str(td_record.identity),
            {"pins": {k: v["identity"] for k, v in join.pins.items()}, "run": run.id},
        )
        for listener in self.listeners:
            listener(td_record, result)
        return TrainingData(td_record, result, self.files.read_parquet, None, self._part)

    def plan_join(
        self,
        fv: FeatureView,
        entity_df: Any,
        timestamp_column: str,
        versions: Mapping[str, int] | None,
        as_of: datetime | None,
    ) -> _JoinPlan:
        """Check the entity frame and pin every input group to one verified data version."""
        vmajor = fv.version or 1
        where = f"training data for feature_view/{fv.name}@v{vmajor}"
        self.records.check_blocks(where, [s.group for s in fv.sources])
        groups: list[tuple[ViewSource, FeatureGroup]] = [
            (s, self.catalog.get_feature_group(s.group, s.major)) for s in fv.sources
        ]
        unknown = set(versions or {}) - {g.name for _, g in groups}
        if unknown:
            raise DataError(f"{where}: versions= names group(s) {sorted(unknown)} not in the view")
        problems = license_problems(
            {str(fg.identity(fg.version)): self._effective_licenses(fg) for _, fg in groups},
            fv.use,
            license_table(self.config.licenses),
        )
        if problems:
            raise LicenseError(f"{where}: refused by the licence gate: " + "; ".join(problems))
        key_types: dict[str, pa.DataType] = {}
        for src, fg in groups:
            for key in fg.key_fields:
                col = src.join_key_map.get(key.name, key.name)
                if col in key_types and key_types[col] != key.arrow_type:
                    raise DefinitionError(
                        f"{where}: entity column {col!r} joins keys of different types "
                        f"({key_types[col]} and {key.arrow_type})"
                    )
                key_types[col] = key.arrow_type
        needs_time = any(not fg.is_static for _, fg in groups)
        raw = to_arrow(entity_df, where=where)
        entities = conform_entities(
            raw,
            key_types,
            timestamp_column if needs_time else None,
            where=where,
            naive=self._naive,
        )
        if ROW_COLUMN in entities.column_names:
            raise SchemaMismatchError(where, [f"column name {ROW_COLUMN!r} is reserved"])
        outputs = [fv.output_name(s, f) for s, _ in groups for f in s.features]
        clash = sorted(set(outputs) & set(entities.column_names))
        if clash:
            raise SchemaMismatchError(
                where,
                [
                    f"entity frame column(s) {clash} have the names of features the view adds; "
                    "rename them or set full_feature_names=True on the view"
                ],
            )
        entities = entities.append_column(
            ROW_COLUMN, pa.array(np.arange(entities.num_rows, dtype=np.int64))
        )
        sources: list[PitSource] = []
        pins: dict[str, dict[str, Any]] = {}
        for src, fg in groups:
            m = fg.version or 1
            pinned = self.records.resolve(
                fg,
                (versions or {}).get(fg.name),
                as_of if (versions or {}).get(fg.name) is None else None,
            )
            record = self.registry.data_version(fg.name, m, pinned)
            assert record is not None
            table = self.tables.table(fg.name, m)
            self.records.check_files(fg, pinned)
            pins[fg.name] = {
                "major": m,
                "version": pinned,
                "content": str(record.content),
                "identity": str(record.identity),
            }
            sources.append(
                PitSource(
                    files=table.files(pinned),
                    schema=table.schema(pinned),
                    keys=fg.primary_key,
                    entity_keys=[src.join_key_map.get(k, k) for k in fg.primary_key],
                    event_time=fg.event_time,
                    # exact integer division: float seconds * 1e6 truncates e.g. 249 us to 248
                    ttl_us=None if fg.ttl is None else fg.ttl // timedelta(microseconds=1),
                    features=[(f, fv.output_name(src, f)) for f in src.features],
                )
            )
        # DuckDB labels UTC as 'Etc/UTC'; results carry the frame's and groups' own types
        schema = pa.schema(
            [entities.schema.field(c) for c in entities.column_names if c != ROW_COLUMN]
            + [
                pa.field(out, fg.arrow_schema.field(f).type)
                for src, fg in groups
                for f, out in ((f, fv.output_name(src, f)) for f in src.features)
            ]
        )
        for t in fv.on_demand:  # fail before the join, not after it
            missing = [f.name for f in t.request_fields if f.name not in entities.column_names]
            if missing:
                raise SchemaMismatchError(
                    where,
                    [
                        f"on-demand transform {t.name!r} needs request field(s) {missing} "
                        "as columns of the entity frame"
                    ],
                )
            if t.function is None:
                apply_on_demand(entities.slice(0, 0), [t], where=where)  # raises, says why
        return _JoinPlan(
            entities,
            timestamp_column if needs_time else None,
            sources,
            pins,
            schema,
            tuple(fv.on_demand),
            where,
            tuple(key_types),
        )

    def _effective_licenses(
        self, fg: FeatureGroup, seen: frozenset[str] = frozenset()
    ) -> list[str]:
        """The group's licences plus those of every source it is computed from."""
        found = set(fg.licenses)
        if isinstance(fg.source, FileSource):
            found.update(fg.source.licenses)
        elif isinstance(fg.source, GroupSource) and fg.source.group not in seen:
            parent = self.catalog.get_feature_group(fg.source.group, fg.source.major)
            found.update(self._effective_licenses(parent, seen | {fg.name}))
        return sorted(found)

    def run_join(
        self, join: _JoinPlan, output: str | Path | None
    ) -> tuple[pa.Table | None, ContentHash]:
        """Stream the join, hashing each batch; keep it in memory or write it to ``output``.

        An engine whose workers write (`WorkerWriter`, Daft on Ray) writes ``output`` as a
        folder of Parquet files from the workers and hashes them there, so the result never
        passes through this process (views with on-demand transforms, which run here, are
        joined here as usual)."""
        if output is not None and not join.on_demand and isinstance(self.engine, WorkerWriter):
            uri = self.files.output_uri(output)
            if self.files.exists(uri):
                raise StorageError(
                    f"training data output {uri} exists; the {self.engine.name} engine writes "
                    "a new folder of Parquet files there: name one that does not exist yet",
                    uri=uri,
                )
            _, total = self.engine.pit_join_to(
                join.entities, join.timestamp_column, join.sources, uri
            )
            return None, total
        reader = self.engine.pit_join(
            join.entities,
            join.timestamp_column,
            join.sources,
            strategy=self.config.offline.pit_strategy,
        )
        batches: list[pa.RecordBatch] = []
        writer = None
        schema = pa.schema([*join.schema, *output_fields(join.on_demand)])
        if output is not None:
            writer = self.files.parquet_writer(self.files.output_uri(output), schema)

        def joined() -> Iterator[pa.RecordBatch]:
            for raw_batch in reader:
                batch = raw_batch.cast(join.schema)
                if join.on_demand:
                    table = apply_on_demand(
                        pa.Table.from_batches([batch]), join.on_demand, where=join.where
                    )
                    parts = table.combine_chunks().to_batches()
                    batch = parts[0] if parts else pa.RecordBatch.from_pylist([], table.schema)
                if writer is not None:
                    writer.write_batch(batch)
                else:
                    batches.append(batch)
                yield batch

        try:
            # one content_hash over the whole stream, so that its threads hash slices side
            # by side while this thread fetches, casts and writes the batches
            total = content_hash(joined())
        finally:
            if writer is not None:
                writer.close()
        result = None if writer is not None else pa.Table.from_batches(batches, schema)
        return result, total

    def training_datasets(
        self, view: str, *, major: int | None = None
    ) -> list[TrainingDatasetRecord]:
        return self.registry.training_datasets(view, major)


def column_roles(
    join: _JoinPlan, fv: FeatureView, label: str | None, helpers: Sequence[str]
) -> dict[str, Any]:
    """Which columns are the model's features, its label and helpers; refused (before
    any join) when the label or a helper is not a column of the training set."""
    entity = [c for c in join.entities.column_names if c != ROW_COLUMN]
    outputs = [
        *(n for n in join.schema.names if n not in entity),
        *(f.name for f in output_fields(join.on_demand)),
    ]
    kept = [*dict.fromkeys([*fv.helpers, *helpers])]
    missing = [c for c in [*([label] if label else []), *kept] if c not in [*entity, *outputs]]
    if missing:
        raise SchemaMismatchError(
            join.where,
            [
                f"label/helper column(s) {missing} are neither entity frame columns nor "
                f"features of the view; columns: {[*entity, *outputs]}"
            ],
        )
    return {
        "keys": list(join.keys),
        "features": [c for c in outputs if c != label and c not in kept],
        **({"label": label} if label else {}),
        **({"helpers": kept} if kept else {}),
    }


def coverage(
    join: _JoinPlan,
    groups: Mapping[str, FeatureGroup],
    tables: Tables,
    registry: RegistryBackend,
) -> list[str]:
    """What of the entity frame the pinned inputs cannot serve: groups whose version holds
    no rows, and entity rows earlier than a group's first event time or later than its
    last plus the TTL (from Delta file statistics: no data is read)."""
    gaps: list[str] = []
    times = None
    if join.timestamp_column is not None:
        times = join.entities.column(join.timestamp_column)
        span = pc.min_max(times).as_py()
        frame = f"entity times {_when(span['min'])} .. {_when(span['max'])}"
    total = join.entities.num_rows
    for name, pin in join.pins.items():
        fg = groups[name]
        record = registry.data_version(name, pin["major"], pin["version"])
        assert record is not None
        if record.rows == 0:
            gaps.append(
                f"{pin['identity']} holds no rows, so its features are null in every row; "
                f"ingest or backfill it, or pin a version with data (--pin {name}=N)"
            )
            continue
        if times is None or fg.event_time is None:
            continue
        bounds = tables.table(name, pin["major"]).time_range(pin["version"], fg.event_time)
        if bounds is None:
            continue
        low, high = bounds
        stored = f"stored event times {_when(low)} .. {_when(high)}"
        early = int(pc.sum(pc.less(times, pa.scalar(low, times.type))).as_py() or 0)
        if early:
            gaps.append(
                f"{early:,} of {total:,} entity row(s) are earlier than anything in "
                f"{pin['identity']} ({stored}; {frame}): its features are null there"
            )
        if fg.ttl is not None:
            expiry = pa.scalar(high + fg.ttl, times.type)
            late = int(pc.sum(pc.greater(times, expiry)).as_py() or 0)
            if late:
                gaps.append(
                    f"{late:,} of {total:,} entity row(s) are later than the last event time "
                    f"in {pin['identity']} plus its ttl {format_duration(fg.ttl)} "
                    f"({stored}; {frame}): its features have expired there and are null"
                )
    return gaps


def _when(value: Any) -> str:
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)
