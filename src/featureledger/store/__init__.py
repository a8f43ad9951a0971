"""`FeatureStore`: the one facade the CLI, the server and users call.

`FeatureStore` (in `_facade`) is thin: it builds one service per concern, each given the
ports (registry, offline engine, tables, online store) and collaborators it needs, and
delegates every public method to one of them:

- `_tables.Tables`: where the Delta tables live; `_runs.Runs`: runs and lineage events;
  `_records.VersionRecords`: data-version records, recovery, resolution, file checks;
- `_definitions.DefinitionService`: lookups, plan, apply;
- `_data.DataService`: ingest (write-audit-publish), quarantine, compaction, reads;
- `_training.TrainingService`: point-in-time joins; `_versions.VersionService`: diff,
  rollback, verify, pointers, vacuum, audit; `_pipelines.PipelineService`: feature
  pipelines and reproduce; `_backfill.BackfillService`: filling a new major version
  from an older one; `_models.ModelService`: models and deployments;
  `_lineage.LineageService`: ancestors and impact;
- `_stats.StatisticsService`, `_feature_logs.FeatureLogs`, `_monitoring.MonitoringService`:
  statistics, served-feature logs, drift, skew, reports, monitors, release checks;
- `_online.OnlineService`: materialization and online reads; `_tokens.AccessService`: the
  feature server's tokens and authorization.

A service calls only the services it was given, all of them below it in that list.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featureledger.store._backfill import Backfill
    from featureledger.store._data import QUARANTINE_AT, QUARANTINE_RUN
    from featureledger.store._definitions import Plan, PlanItem
    from featureledger.store._facade import FeatureStore
    from featureledger.store._online import Materialization, OnlineFeatures
    from featureledger.store._pipelines import PipelineRun
    from featureledger.store._training import TrainingData
    from featureledger.versioning.reproduce import ReproduceReport

# Imported on first use, so that the light catalog (`_light`, for `list`, `versions` and
# `show`) is importable without the services and the libraries they need.
_LAZY = {
    "Backfill": "_backfill",
    "QUARANTINE_AT": "_data",
    "QUARANTINE_RUN": "_data",
    "Plan": "_definitions",
    "PlanItem": "_definitions",
    "FeatureStore": "_facade",
    "Materialization": "_online",
    "OnlineFeatures": "_online",
    "PipelineRun": "_pipelines",
    "TrainingData": "_training",
    "ReproduceReport": "featureledger.versioning.reproduce",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    where = module if "." in module else f"{__name__}.{module}"
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "QUARANTINE_AT",
    "QUARANTINE_RUN",
    "Backfill",
    "FeatureStore",
    "Materialization",
    "OnlineFeatures",
    "PipelineRun",
    "Plan",
    "PlanItem",
    "ReproduceReport",
    "TrainingData",
]
