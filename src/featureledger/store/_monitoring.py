"""Statistics per version, drift between any two identities, and HTML reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads

from featureledger.definitions import VersionId
from featureledger.errors import DataError, NotFoundError
from featureledger.monitoring import (
    ColumnStats,
    DriftReport,
    Finding,
    Monitor,
    MonitorContext,
    bins_of,
    check_freshness,
    compute_stats,
    drift,
    evaluate_monitor,
    export_plots,
    load_monitors,
    newest_time,
    render_report,
    stats_from_json,
    stats_to_json,
)
from featureledger.store._lineage import _LineageMixin
from featureledger.versioning.provenance import current_user


class _MonitoringMixin(_LineageMixin):
    def stats(self, identity: str) -> dict[str, ColumnStats]:
        """Statistics of a data version or training dataset, computed once and kept.

        Both are immutable, so the first computation is stored in the registry and later
        calls (drift, reports, monitors) never re-read the data. Numeric histograms of a
        group's versions share the bins of its first non-empty version, so versions
        compare bin for bin.
        """
        ident = self._stats_identity(identity)
        cached = self.registry.get_stats(str(ident))
        if cached is not None:
            return dict(stats_from_json(cached))
        reference = None
        if ident.kind == "feature_group":
            fg = self.get_feature_group(ident.name, ident.major)
            assert ident.data is not None
            self._check_files(fg, ident.data)
            baseline = next(
                (v for v in self.registry.data_versions(fg.name, ident.major or 1) if v.rows),
                None,
            )
            if baseline is not None and baseline.version != ident.data:
                reference = bins_of(self.stats(str(baseline.identity)))
            table = self._table(fg.name, ident.major or 1)
            data: pa.Table | pads.Dataset = pads.dataset(table.files(ident.data), format="parquet")
        else:
            data = self._training_rows(self._training_record(ident))
        stats = compute_stats(data, reference_bins=reference)
        self.registry.put_stats(str(ident), stats_to_json(stats))
        return dict(stats)

    def _stats_identity(self, identity: str) -> VersionId:
        ident = VersionId.parse(identity)
        if ident.kind == "feature_group":
            fg = self.get_feature_group(ident.name, ident.major)
            number = self._resolve_version(fg, ident.data, None)
            return VersionId("feature_group", fg.name, fg.version or 1, number)
        if ident.kind == "training_dataset":
            return self._training_record(ident).identity
        raise NotFoundError(
            f"{identity}: statistics exist for feature group data versions and training "
            "datasets only"
        )

    def _feature_names(self, ident: VersionId) -> list[str]:
        if ident.kind == "feature_group":
            return list(self.get_feature_group(ident.name, ident.major).feature_names)
        record = self._training_record(ident)
        fv = self.get_feature_view(record.view, record.major)
        return [fv.output_name(s, f) for s in fv.sources for f in s.features]

    def drift(
        self, reference: str, current: str, *, features: Sequence[str] | None = None
    ) -> DriftReport:
        """Drift of ``current`` against ``reference`` from their stored statistics."""
        ref, cur = self._stats_identity(reference), self._stats_identity(current)
        if features is None:  # keys and times are not features: compare what both serve
            theirs = set(self._feature_names(cur))
            features = [f for f in self._feature_names(ref) if f in theirs]
        return drift(
            self.stats(str(ref)),
            self.stats(str(cur)),
            features=features,
            reference_id=str(ref),
            current_id=str(cur),
        )

    def report(
        self,
        reference: str,
        current: str,
        output: str | Path,
        *,
        features: Sequence[str] | None = None,
        png_dir: str | Path | None = None,
    ) -> Path:
        """Write a self-contained HTML drift report (and, optionally, each plot as PNG)."""
        result = self.drift(reference, current, features=features)
        page = render_report(f"{result.current} vs {result.reference}", result)
        target = Path(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page, encoding="utf-8")
        if png_dir is not None:
            export_plots(png_dir, result)
        return target

    # -- monitors ---------------------------------------------------------------------------
    def monitors(self) -> list[Monitor]:
        """The monitors declared in the repository's ``monitors.yaml`` (none if absent)."""
        path = self.repo / "monitors.yaml"
        return load_monitors(path) if path.exists() else []

    def run_monitors(
        self, monitors: Sequence[Monitor] | None = None, *, now: datetime | None = None
    ) -> list[Finding]:
        """Evaluate monitors, keep their findings, and return them.

        A monitor's earlier open finding is resolved (superseded) by its new evaluation, so
        the open findings are always those of the latest run. Drift monitors compare the
        latest data version with the previous non-empty one (``reference: previous``) or
        with a given identity; freshness monitors read the newest event time from the
        kept statistics and the last write from the registry.
        """
        when = now or datetime.now(UTC)
        findings = []
        for monitor in self.monitors() if monitors is None else monitors:
            finding = self._evaluate(monitor, when)
            self.registry.resolve_findings(monitor.name, "superseded by a later evaluation")
            if finding.breached:
                self.registry.add_finding(
                    monitor.name,
                    monitor.target,
                    finding.status,
                    finding.blocking,
                    finding.to_dict(),
                )
            findings.append(finding)
        return findings

    def _evaluate(self, monitor: Monitor, when: datetime) -> Finding:
        target = VersionId.parse(monitor.target)
        if target.kind != "feature_group":
            raise NotFoundError(
                f"monitor {monitor.name!r}: only feature_group targets are evaluated so far"
            )
        fg = self.get_feature_group(target.name, target.major)
        records = [r for r in self.versions(fg) if r.rows]
        if monitor.metric in ("event_age", "ingest_age"):
            newest = None
            if records and fg.event_time:
                st = self.stats(str(records[-1].identity)).get(fg.event_time)
                newest = None if st is None else newest_time(st.max)  # type: ignore[arg-type]
            last = records[-1].created_at if records else None
            return check_freshness(monitor, newest_event_time=newest, last_ingest=last, now=when)
        if not records:
            raise NotFoundError(f"monitor {monitor.name!r}: {fg.name!r} holds no data yet")
        current = str(records[-1].identity)
        reference = monitor.reference
        if reference == "previous":
            # with one version there is nothing to compare with yet: it is its own reference
            reference = str(records[-2].identity) if len(records) > 1 else current
        result = self.drift(reference, current, features=list(monitor.features) or None)
        context = MonitorContext(
            reference=reference, current=current, last_good=reference, now=when
        )
        return evaluate_monitor(monitor, result, context)

    def open_findings(self) -> list[dict[str, object]]:
        return self.registry.open_findings()

    def resolve_monitor(self, monitor: str, *, reason: str) -> int:
        """Accept a monitor's open findings (e.g. an expected shift), with the reason."""
        if not reason.strip():
            raise DataError("give a reason when resolving a finding; it goes to the audit log")
        n = self.registry.resolve_findings(monitor, f"resolved: {reason}")
        self.registry.audit(
            current_user(),
            "resolve-finding",
            f"monitor/{monitor}",
            {"findings": n, "reason": reason},
        )
        return n
