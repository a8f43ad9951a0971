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

from featureledger.store._backfill import Backfill
from featureledger.store._data import QUARANTINE_AT, QUARANTINE_RUN
from featureledger.store._definitions import Plan, PlanItem
from featureledger.store._facade import FeatureStore
from featureledger.store._online import Materialization, OnlineFeatures
from featureledger.store._pipelines import PipelineRun, ReproduceReport
from featureledger.store._training import TrainingData

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
