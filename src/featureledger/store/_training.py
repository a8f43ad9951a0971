"""Point-in-time correct training data, pinned to data versions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
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
from featureledger.errors import (
    DataError,
    DefinitionError,
    LicenseError,
    NotFoundError,
    SchemaMismatchError,
    StorageError,
)
from featureledger.hashing import ContentHash, content_hash
from featureledger.offline import ROW_COLUMN, PitSource
from featureledger.offline.base import OfflineEngine, WorkerWriter
from featureledger.offline.conform import NaivePolicy, conform_entities, to_arrow
from featureledger.registry import RegistryBackend, TrainingDatasetRecord
from featureledger.store._catalog import Catalog
from featureledger.store._files import StoreFiles
from featureledger.store._records import VersionRecords
from featureledger.store._runs import Runs
from featureledger.store._tables import Tables
from featureledger.transforms.on_demand import apply_on_demand, output_fields
from featureledger.versioning.provenance import current_user


@dataclass
class TrainingData:
    """The result of `FeatureStore.training_data`: rows plus the record that pins them."""

    record: TrainingDatasetRecord
    _table: pa.Table | None = None
    #: reads the kept output (a local path or an object-store URI)
    _read: Callable[[str], pa.Table] = field(default=pq.read_table, repr=False)

    @property
    def identity(self) -> VersionId:
        return self.record.identity

    def to_arrow(self) -> pa.Table:
        if self._table is None:
            assert self.record.output_path is not None
            table = self._read(self.record.output_path)
            if ROW_COLUMN in table.column_names:
                # written by an engine's workers (`WorkerWriter`): restore the entity order,
                # and the plain types of Daft's large ones (the same values, the same hash)
                table = table.sort_by(ROW_COLUMN).drop_columns([ROW_COLUMN])
                table = table.cast(pa.schema([f.with_type(_plain(f.type)) for f in table.schema]))
            self._table = table
        return self._table

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def to_polars(self) -> Any:
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def __len__(self) -> int:
        return self.record.rows


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
        return records[-1]

    def rows(self, record: TrainingDatasetRecord) -> pa.Table:
        """A training dataset's rows: its output file when kept, else rebuilt from its pins."""
        if record.output_path and self.files.exists(record.output_path):
            return self.files.read_parquet(record.output_path)
        rebuilt, _ = self.rebuild(record, None)
        assert rebuilt is not None
        return rebuilt

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
    ) -> TrainingData:
        """Point-in-time correct features for each row of ``entity_df``.

        Each input group is pinned to a data version: ``versions[group]`` if given, else
        the version current ``as_of``, else the latest. The result keeps the entity rows'
        order and count. It is recorded as a training dataset with its pins and hashes;
        with ``output`` it is streamed to that Parquet file instead of held in memory.
        """
        fv = self.catalog.get_feature_view(view, version)
        vmajor = fv.version or 1
        join = self.plan_join(fv, entity_df, timestamp_column, versions, as_of)
        user = current_user()
        run = self.runs.start(
            "training-data",
            user,
            {
                "view": fv.name,
                "major": vmajor,
                "rows": join.entities.num_rows,
                "timestamp_column": timestamp_column,
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
                    },
                )
            )
        except Exception as exc:
            self.runs.finish(run.id, "failed", [], error=f"{type(exc).__name__}: {exc}")
            raise
        self.runs.finish(run.id, "succeeded", [str(td_record.identity)])
        self.registry.audit(
            user,
            "training-data",
            str(td_record.identity),
            {"pins": {k: v["identity"] for k, v in join.pins.items()}, "run": run.id},
        )
        for listener in self.listeners:
            listener(td_record, result)
        return TrainingData(td_record, result, self.files.read_parquet)

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
