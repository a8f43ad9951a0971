"""Monitoring: statistics per data version, drift, training-serving skew, freshness SLOs,
monitors with actions, and HTML reports with plots.

Pure functions over Arrow tables and stored statistics; the store decides what to compare,
stores statistics and findings, and acts on blocking findings. Modules:

- `stats`: `compute_stats` (one DuckDB query per table) and the JSON form the registry stores;
- `metrics`: PSI, JS, KS, chi-square, Wasserstein and the default thresholds, written once;
- `drift`: `drift(reference, current)` from tables or stored statistics;
- `skew`: `skew(offline, online, keys, features)`, served vs point-in-time offline values;
- `monitors`: `Monitor`, `evaluate_monitor`, `check_freshness`, release-gate metrics;
- `served`: `ServedWindow`, a window of logged serving features (``served/VIEW:1d``);
- `report`: `render_report` (one self-contained HTML page) and `export_plots` (PNG).
"""

from featureledger.monitoring.drift import DriftReport, FeatureDrift, MetricResult, drift
from featureledger.monitoring.metrics import (
    DEFAULT_THRESHOLDS,
    METRICS,
    PSI_EPSILON,
    ChiSquareResult,
    KSResult,
    Status,
    Threshold,
    chi_square,
    js_divergence,
    ks_2samp,
    ks_pvalue,
    ks_statistic,
    psi,
    psi_categorical,
    psi_from_counts,
    wasserstein,
)
from featureledger.monitoring.monitors import (
    DEFAULT_RELEASE_GATES,
    SKEW_METRICS,
    TIME_METRICS,
    Finding,
    Monitor,
    MonitorContext,
    blocking,
    check_freshness,
    evaluate_monitor,
    gate_findings,
    load_monitors,
    monitors_from_yaml,
    monitors_to_yaml,
    newest_time,
    release_metrics,
)
from featureledger.monitoring.report import export_plots, render_plots, render_report
from featureledger.monitoring.served import ServedWindow
from featureledger.monitoring.skew import FeatureSkew, SkewReport, skew
from featureledger.monitoring.stats import (
    ColumnStats,
    Histogram,
    bins_of,
    compute_stats,
    stats_from_dict,
    stats_from_json,
    stats_to_dict,
    stats_to_json,
)

__all__ = [
    "DEFAULT_RELEASE_GATES",
    "DEFAULT_THRESHOLDS",
    "METRICS",
    "PSI_EPSILON",
    "SKEW_METRICS",
    "TIME_METRICS",
    "ChiSquareResult",
    "ColumnStats",
    "DriftReport",
    "FeatureDrift",
    "FeatureSkew",
    "Finding",
    "Histogram",
    "KSResult",
    "MetricResult",
    "Monitor",
    "MonitorContext",
    "ServedWindow",
    "SkewReport",
    "Status",
    "Threshold",
    "bins_of",
    "blocking",
    "check_freshness",
    "chi_square",
    "compute_stats",
    "drift",
    "evaluate_monitor",
    "export_plots",
    "gate_findings",
    "js_divergence",
    "ks_2samp",
    "ks_pvalue",
    "ks_statistic",
    "load_monitors",
    "monitors_from_yaml",
    "monitors_to_yaml",
    "newest_time",
    "psi",
    "psi_categorical",
    "psi_from_counts",
    "release_metrics",
    "render_plots",
    "render_report",
    "skew",
    "stats_from_dict",
    "stats_from_json",
    "stats_to_dict",
    "stats_to_json",
    "wasserstein",
]
