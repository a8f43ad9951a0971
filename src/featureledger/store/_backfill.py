"""Backfill: fill a group's new major version from an older one, by copying its rows
(mapped to the new schema) or by recomputing its pipeline over the same time span."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from featureledger.definitions import FeatureGroup
from featureledger.errors import DataError, DefinitionError, EmptyDataError
from featureledger.offline.conform import NaivePolicy, conform_parts
from featureledger.registry import DataVersion, RegistryBackend
from featureledger.store._catalog import Catalog
from featureledger.store._data import DataService
from featureledger.store._pipelines import PipelineService
from featureledger.store._records import VersionRecords
from featureledger.store._runs import Runs
from featureledger.store._tables import Tables
from featureledger.versioning.provenance import current_user


@dataclass(frozen=True)
class Backfill:
    """What a backfill did: the version written (or the current one when nothing
    changed), where it read from, and how the columns were mapped."""

    version: DataVersion
    source: str
    method: str
    rows: int
    changed: bool
    copied: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    nulled: tuple[str, ...] = ()


class BackfillService:
    """Backfills into a new major version, through the ingest or pipeline write path (so
    the contract of the new version judges the rows, and a crash is repaired as any write)."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        tables: Tables,
        catalog: Catalog,
        records: VersionRecords,
        runs: Runs,
        data: DataService,
        pipelines: PipelineService,
        naive: NaivePolicy,
    ) -> None:
        self.registry = registry
        self.tables = tables
        self.catalog = catalog
        self.records = records
        self.runs = runs
        self.data = data
        self.pipelines = pipelines
        self._naive = naive

    def backfill(
        self,
        group: str | FeatureGroup,
        *,
        from_version: int,
        to_version: int | None = None,
        recompute: bool = False,
    ) -> Backfill:
        """Fill major ``to_version`` (default: the latest) from the latest data version
        of major ``from_version``; see `FeatureStore.backfill`."""
        name = group.name if isinstance(group, FeatureGroup) else group
        target = self.catalog.get_feature_group(name, to_version)
        source = self.catalog.get_feature_group(name, from_version)
        src_major, dst_major = source.version or 1, target.version or 1
        where = f"backfill feature_group/{name}@v{dst_major} from v{src_major}"
        if src_major == dst_major:
            raise DataError(
                f"{where}: the source and target are the same major version; backfill "
                "copies between major versions (give --to-version, or apply version=N+1 first)"
            )
        src_version = self.records.resolve(source, None, None)
        record = self.registry.data_version(name, src_major, src_version)
        assert record is not None
        src_identity = str(record.identity)
        if record.rows == 0:
            raise EmptyDataError(
                f"{where}: {src_identity} holds no rows, so there is nothing to backfill"
            )
        self.records.check_files(source, src_version)
        if recompute:
            return self._recompute(group, target, source, src_version, src_identity, where)
        return self._copy(target, source, src_version, record, where)

    def _copy(
        self,
        target: FeatureGroup,
        source: FeatureGroup,
        src_version: int,
        record: DataVersion,
        where: str,
    ) -> Backfill:
        src_major, dst_major = source.version or 1, target.version or 1
        stored = self.tables.table(source.name, src_major).read(src_version)
        wanted = target.arrow_schema.names
        copied = [c for c in stored.column_names if c in wanted]
        dropped = [c for c in stored.column_names if c not in wanted]
        nulled = [f.name for f in target.feature_fields if f.name not in stored.column_names]
        needed = [*target.primary_key, *([target.event_time] if target.event_time else [])]
        lacking = [c for c in needed if c not in stored.column_names]
        if lacking:
            raise DefinitionError(
                f"{where}: v{dst_major}'s key or time column(s) {lacking} are not in "
                f"v{src_major}, so its rows cannot be copied; backfill with --recompute "
                "(a pipeline group) or ingest the data into the new version"
            )
        # a created time the source lacks is the source version's commit time, not now:
        # a re-run then writes the same rows, and the writer finds nothing to change
        fill = pa.scalar(record.created_at, pa.timestamp("us", tz="UTC"))
        parts = conform_parts(
            stored.select(copied),
            target,
            where=where,
            naive=self._naive,
            fill_created=fill,
            optional=nulled,
        )
        parts.raise_problems(where)
        assert parts.table is not None
        user = current_user()
        src_identity = str(record.identity)
        run = self.runs.start(
            "backfill",
            user,
            {
                "group": target.name,
                "major": dst_major,
                "from": src_identity,
                "method": "copy",
                "rows": parts.table.num_rows,
                "dropped": dropped,
                "nulled": nulled,
            },
            inputs=[src_identity],
        )
        before = self.records.latest(target.name, dst_major).version
        note = f"backfill (copy) from {src_identity}"
        if dropped:
            note += f"; dropped {', '.join(dropped)}"
        if nulled:
            note += f"; null {', '.join(nulled)}"
        written = self.data.commit_batch(target, parts.table, "upsert", note, run, user)
        return Backfill(
            written,
            src_identity,
            "copy",
            parts.table.num_rows,
            written.version != before,
            tuple(copied),
            tuple(dropped),
            tuple(nulled),
        )

    def _span(self, source: FeatureGroup, version: int, where: str) -> tuple[datetime, datetime]:
        """The source-time window to recompute: the union of the windows the old major's
        pipeline runs computed (a pipeline may shift times, so its output's event times
        are not its input's), else the old major's stored event-time range."""
        major = source.version or 1
        windows = [
            (datetime.fromisoformat(r.params["start"]), datetime.fromisoformat(r.params["end"]))
            for r in self.registry.runs()
            if r.kind == "pipeline"
            and r.status in ("succeeded", "unchanged")
            and r.params.get("group") == source.name
            and r.params.get("major") == major
        ]
        if windows:
            return min(w[0] for w in windows), max(w[1] for w in windows)
        if source.event_time is None:
            raise DefinitionError(
                f"{where}: v{major} has no event time and no pipeline runs, so it gives no "
                "time span to recompute; run the pipeline with `featureledger run --start --end`"
            )
        bounds = self.tables.table(source.name, major).time_range(version, source.event_time)
        assert bounds is not None  # the version holds rows, and event times are not null
        return bounds  # the end is past the last event time: a half-open window

    def _recompute(
        self,
        group: str | FeatureGroup,
        target: FeatureGroup,
        source: FeatureGroup,
        src_version: int,
        src_identity: str,
        where: str,
    ) -> Backfill:
        if target.source is None:
            raise DefinitionError(
                f"{where}: --recompute runs the group's pipeline, and v{target.version or 1} "
                "has no source; copy the rows instead (drop --recompute)"
            )
        start, end = self._span(source, src_version, where)
        dst_major = target.version or 1
        live = target
        if isinstance(group, FeatureGroup):  # the declared group carries the live function
            live = dataclasses.replace(group, version=group.version or dst_major)
        before = self.records.latest(target.name, dst_major).version
        result = self.pipelines.run_pipeline(
            live, start=start, end=end, note=f"backfill (recompute) over {src_identity}'s span"
        )
        return Backfill(
            result.version, src_identity, "recompute", result.rows, result.version.version != before
        )
