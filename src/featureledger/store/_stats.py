"""Statistics per data version and training dataset: computed once and kept, after each
write in the background or on first use."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from featureledger.config import RepoConfig
from featureledger.definitions import FeatureView, VersionId
from featureledger.errors import NotFoundError
from featureledger.monitoring import (
    ColumnStats,
    bins_of,
    compute_stats,
    stats_from_json,
    stats_to_json,
)
from featureledger.offline.base import OfflineEngine
from featureledger.registry import DataVersion, RegistryBackend, TrainingDatasetRecord
from featureledger.store._catalog import Catalog
from featureledger.store._records import VersionRecords
from featureledger.store._tables import Tables
from featureledger.store._training import TrainingService

log = logging.getLogger(__name__)


class _StatsWorker:
    """Computes statistics after commits, one at a time, on a thread that lives while there
    is work. It is not a daemon, so the interpreter waits for it before exiting."""

    def __init__(self, job: Callable[[VersionId, pa.Table | None], object]) -> None:
        self._job = job
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._jobs: deque[tuple[VersionId, pa.Table | None]] = deque()
        self._pending: dict[str, int] = {}
        self._thread: threading.Thread | None = None

    def submit(self, ident: VersionId, rows: pa.Table | None) -> None:
        with self._lock:
            self._jobs.append((ident, rows))
            self._pending[str(ident)] = self._pending.get(str(ident), 0) + 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="featureledger-stats")
                self._thread.start()

    def pending(self, ident: str) -> bool:
        with self._lock:
            return ident in self._pending

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every submitted job is done; False on timeout."""
        with self._lock:
            if self._thread is threading.current_thread():
                return False
            return self._idle.wait_for(lambda: self._thread is None, timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._thread = None
                    self._idle.notify_all()
                    return
                ident, rows = self._jobs.popleft()
            try:
                self._job(ident, rows)
            except Exception:  # a write never fails for its statistics: say so, carry on
                log.warning(
                    "statistics of %s were not computed after its commit; `featureledger "
                    "stats %s` computes them on demand",
                    ident,
                    ident,
                    exc_info=True,
                )
            finally:
                with self._lock:
                    left = self._pending.pop(str(ident)) - 1
                    if left:
                        self._pending[str(ident)] = left


def _view_features(fv: FeatureView) -> list[str]:
    return [fv.output_name(s, f) for s in fv.sources for f in s.features]


class StatisticsService:
    """Statistics of data versions and training sets, kept in the registry."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        engine: OfflineEngine,
        config: RepoConfig,
        tables: Tables,
        catalog: Catalog,
        records: VersionRecords,
        training: TrainingService,
    ) -> None:
        self.registry = registry
        self.engine = engine
        self.config = config
        self.tables = tables
        self.catalog = catalog
        self.records = records
        self.training = training
        self._worker: _StatsWorker | None = None

    def version_recorded(self, record: DataVersion) -> None:
        """Once a data version is recorded (published), compute its statistics as
        ``monitoring.stats_on_write`` says."""
        if record.rows:
            self.on_write(record.identity, None)

    def training_recorded(self, record: TrainingDatasetRecord, rows: pa.Table | None) -> None:
        self.on_write(record.identity, rows)

    def settle(self, identities: list[str], timeout: float = 60.0) -> None:
        """Wait (at most ``timeout`` s) for background statistics of ``identities`` still
        being computed; nothing to do when none is pending."""
        worker = self._worker
        if worker is not None and any(worker.pending(i) for i in identities):
            worker.wait(timeout)

    def on_write(self, ident: VersionId, rows: pa.Table | None) -> None:
        mode = self.config.monitoring.stats_on_write
        if mode == "off":
            return
        if mode == "sync":
            try:
                self._stats_of(ident, rows)
            except Exception:  # the write stands; the statistics wait for first use
                log.warning("statistics of %s were not computed", ident, exc_info=True)
            return
        if self._worker is None:
            self._worker = _StatsWorker(self._stats_of)
        self._worker.submit(ident, rows)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the statistics being computed after writes are stored."""
        return True if self._worker is None else self._worker.wait(timeout)

    # -- statistics -----------------------------------------------------------------------------
    def stats(self, identity: str) -> dict[str, ColumnStats]:
        """Statistics of a data version or training dataset, computed once and kept.

        They are computed after each write (``monitoring.stats_on_write``) or else here on
        first use. Numeric histograms of a group's versions, and of the training sets built
        from it, share the bins of the group's first non-empty version.
        """
        ident = self.identity(identity)
        if self._worker is not None and self._worker.pending(str(ident)):
            self._worker.wait()
        return self._stats_of(ident)

    def _stats_of(self, ident: VersionId, rows: pa.Table | None = None) -> dict[str, ColumnStats]:
        cached = self.registry.get_stats(str(ident))
        if cached is not None:
            return dict(stats_from_json(cached))
        if ident.kind == "feature_group":
            stats = self._group_stats(ident)
        else:
            record = self.training.record(ident)
            import pyarrow.dataset as pads  # only when statistics are computed

            data: pa.Table | pads.Dataset
            if ident.split is not None:  # a part of a split: its own rows
                data = self.training.rows(record, ident.split)
            elif rows is not None:
                data = rows
            elif record.output_path and self.training.files.exists(record.output_path):
                data = self.training.files.dataset(record.output_path)
            else:
                data = self.training.rows(record)
            stats = compute_stats(
                data, reference_bins=self._training_bins(record), engine=self.engine
            )
        self.registry.put_stats(str(ident), stats_to_json(stats))
        return dict(stats)

    def _group_stats(self, ident: VersionId) -> dict[str, ColumnStats]:
        fg = self.catalog.get_feature_group(ident.name, ident.major)
        major = ident.major or 1
        records = self.registry.data_versions(fg.name, major)
        record = next((r for r in records if r.version == ident.data), None)
        if record is None:
            raise NotFoundError(f"{ident} is not recorded")
        # the same rows have the same statistics: a rollback or compaction reuses them
        for other in records:
            if (
                other.version != record.version
                and other.content == record.content
                and other.schema_hash == record.schema_hash
            ):
                kept = self.registry.get_stats(str(other.identity))
                if kept is not None:
                    return dict(stats_from_json(kept))
        assert ident.data is not None
        self.records.check_files(fg, ident.data)
        baseline = self._baseline(fg.name, major)
        reference = None
        if baseline is not None and baseline.version != ident.data:
            reference = bins_of(self._stats_of(baseline.identity))
        table = self.tables.table(fg.name, major)
        fs, files = table.storage.arrow_filesystem(), table.files(ident.data)
        paths = [table.storage.arrow_path(f) for f in files]
        import pyarrow.dataset as pads

        data = pads.dataset(paths, format="parquet", filesystem=fs)
        return dict(compute_stats(data, reference_bins=reference, engine=self.engine))

    def _baseline(self, group: str, major: int) -> DataVersion | None:
        """The group's first non-empty version: its bins are every version's bins."""
        return next((v for v in self.registry.data_versions(group, major) if v.rows), None)

    def _training_bins(self, record: TrainingDatasetRecord) -> dict[str, Any]:
        """Each feature's bins from its source group's baseline, under its output name, so
        a training set compares bin for bin with the versions of its groups."""
        fv = self.catalog.get_feature_view(record.view, record.major)
        bins: dict[str, Any] = {}
        for src in fv.sources:
            pin = record.pins.get(src.group)
            baseline = None if pin is None else self._baseline(src.group, pin["major"])
            if baseline is None:
                continue
            reference = bins_of(self._stats_of(baseline.identity))
            for feature in src.features:
                if feature in reference:
                    bins[fv.output_name(src, feature)] = reference[feature]
        return bins

    def identity(self, identity: str) -> VersionId:
        ident = VersionId.parse(identity)
        if ident.kind == "feature_group":
            fg = self.catalog.get_feature_group(ident.name, ident.major)
            number = self.records.resolve(fg, ident.data, None)
            return VersionId("feature_group", fg.name, fg.version or 1, number)
        if ident.kind == "training_dataset":
            whole = self.training.record(ident).identity  # checks that the part exists
            return VersionId(
                whole.kind, whole.name, whole.major, number=whole.number, split=ident.split
            )
        raise NotFoundError(
            f"{identity}: statistics exist for feature group data versions and training "
            "datasets only"
        )

    def feature_names(self, ident: VersionId) -> list[str]:
        if ident.kind == "feature_group":
            return list(self.catalog.get_feature_group(ident.name, ident.major).feature_names)
        record = self.training.record(ident)
        return _view_features(self.catalog.get_feature_view(record.view, record.major))
