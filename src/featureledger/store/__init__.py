"""`FeatureStore`: the one facade the CLI, the server and users call.

The facade is assembled from one module per concern, each building on the one before:
`_base` (state, lookups, data-version records, runs), `_definitions` (plan, apply),
`_data` (ingest, contracts, quarantine, reads), `_training` (point-in-time joins),
`_versions` (diff, rollback, integrity, pointers, vacuum, audit), `_pipelines`
(feature pipelines, reproduce), `_models` (models, deployments), `_lineage`
(ancestors, impact), `_monitoring` (statistics, drift, reports), `_online`
(materialization, online reads) and `_tokens` (API tokens of the feature server). The
logic itself lives in the packages below (definitions, versioning, contracts, lineage,
monitoring, offline, online, registry).
"""

from featureledger.store._data import QUARANTINE_AT, QUARANTINE_RUN
from featureledger.store._definitions import Plan, PlanItem
from featureledger.store._online import Materialization, OnlineFeatures
from featureledger.store._pipelines import PipelineRun, ReproduceReport
from featureledger.store._tokens import _TokensMixin
from featureledger.store._training import TrainingData


class FeatureStore(_TokensMixin):
    """A feature repository: definitions, versioned feature data and training sets.

    ``FeatureStore("path/to/repo")`` opens a repository made by `FeatureStore.init`
    or ``featureledger init``.
    """


__all__ = [
    "QUARANTINE_AT",
    "QUARANTINE_RUN",
    "FeatureStore",
    "Materialization",
    "OnlineFeatures",
    "PipelineRun",
    "Plan",
    "PlanItem",
    "ReproduceReport",
    "TrainingData",
]
