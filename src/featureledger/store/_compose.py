"""Wiring: every service of a `FeatureStore`, built with exactly the ports and collaborators
it needs (docs/architecture.md). The facade only delegates; this is the one place that knows
which service depends on which."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from featureledger._memory import settle_numpy_hugepages
from featureledger.config import OfflineConfig, RepoConfig, is_remote_path
from featureledger.offline import OfflineEngine, create_engine
from featureledger.offline.conform import NaivePolicy
from featureledger.registry import RegistryBackend, open_registry
from featureledger.storage import Storage, open_storage
from featureledger.store._auditkey import load_audit_key
from featureledger.store._backfill import BackfillService
from featureledger.store._catalog import Catalog
from featureledger.store._corpora import CorpusService
from featureledger.store._data import DataService
from featureledger.store._definitions import DefinitionService
from featureledger.store._deployments import DeploymentService
from featureledger.store._evaluation import EvaluationService
from featureledger.store._feature_logs import FeatureLogs
from featureledger.store._files import StoreFiles
from featureledger.store._history import HistoryService
from featureledger.store._indexes import IndexService
from featureledger.store._lineage import LineageService
from featureledger.store._llm import LLMService
from featureledger.store._model_monitoring import ModelMonitoringService
from featureledger.store._models import ModelService
from featureledger.store._monitoring import MonitoringService
from featureledger.store._online import OnlineService
from featureledger.store._pipelines import PipelineService
from featureledger.store._predictions import PredictionService
from featureledger.store._predictor import ModelRuntime
from featureledger.store._records import VersionRecords
from featureledger.store._reproduce import ReproduceService
from featureledger.store._runs import Runs
from featureledger.store._stats import StatisticsService
from featureledger.store._tables import Tables
from featureledger.store._tokens import AccessService
from featureledger.store._training import TrainingService
from featureledger.store._versions import VersionService


@dataclass(frozen=True, slots=True)
class Services:
    """The services of one open store; new capabilities add a field here and a builder line
    in `compose`, and reach the facade as a few delegating methods or one namespace property."""

    registry: RegistryBackend
    storage: Storage
    engine: OfflineEngine
    tables: Tables
    runs: Runs
    catalog: Catalog
    records: VersionRecords
    definitions: DefinitionService
    data: DataService
    training: TrainingService
    versioning: VersionService
    pipelines: PipelineService
    reproduce: ReproduceService
    backfill: BackfillService
    models: ModelService
    lineage: LineageService
    history: HistoryService
    statistics: StatisticsService
    logs: FeatureLogs
    monitoring: MonitoringService
    model_monitoring: ModelMonitoringService
    online: OnlineService
    access: AccessService
    evaluation: EvaluationService
    predictions: PredictionService
    deployments: DeploymentService
    llm: LLMService


def compose(repo: Path, config: RepoConfig) -> Services:
    """Open the ports named by ``config`` for the repository at ``repo`` and build the services."""
    settle_numpy_hugepages()
    registry = open_registry(config.registry_url(repo), audit_key=load_audit_key(repo))
    off = config.offline
    storage = open_storage(config.location(repo, off.path), config.storage.to_options())
    engine = create_engine(config, repo, storage)
    naive: NaivePolicy = "utc" if config.naive_timestamps == "utc" else "error"
    # feature logs stay on local disk (under the default path) when tables are remote
    logs_root = config.resolve(repo, OfflineConfig.path if is_remote_path(off.path) else off.path)
    tables = Tables(storage, logs_root)
    files = StoreFiles(config=config, repo=repo, storage=storage)
    runs = Runs(registry=registry, config=config, repo=repo)
    catalog = Catalog(registry=registry)
    records = VersionRecords(
        registry=registry,
        tables=tables,
        catalog=catalog,
        recover_after=timedelta(seconds=config.storage.recover_after),
    )
    definitions = DefinitionService(
        registry=registry, tables=tables, catalog=catalog, records=records, repo=repo
    )
    data = DataService(
        registry=registry,
        engine=engine,
        tables=tables,
        catalog=catalog,
        records=records,
        runs=runs,
        repo=repo,
        naive=naive,
        files=files,
    )
    training = TrainingService(
        registry=registry,
        engine=engine,
        tables=tables,
        catalog=catalog,
        records=records,
        runs=runs,
        config=config,
        repo=repo,
        naive=naive,
        files=files,
    )
    versioning = VersionService(
        registry=registry,
        engine=engine,
        tables=tables,
        catalog=catalog,
        definitions=definitions,
        records=records,
        runs=runs,
        data=data,
        training=training,
        repo=repo,
    )
    pipelines = PipelineService(
        registry=registry,
        engine=engine,
        tables=tables,
        catalog=catalog,
        records=records,
        runs=runs,
        data=data,
        versioning=versioning,
        config=config,
        repo=repo,
        naive=naive,
    )
    reproduce = ReproduceService(
        registry=registry,
        catalog=catalog,
        files=files,
        training=training,
        versioning=versioning,
        pipelines=pipelines,
    )
    backfill = BackfillService(
        registry=registry,
        tables=tables,
        catalog=catalog,
        records=records,
        runs=runs,
        data=data,
        pipelines=pipelines,
        naive=naive,
    )
    models = ModelService(
        registry=registry,
        catalog=catalog,
        records=records,
        runs=runs,
        training=training,
        repo=repo,
        files=files,
    )
    lineage = LineageService(registry=registry)
    history = HistoryService(catalog=catalog, records=records, tables=tables)
    statistics = StatisticsService(
        registry=registry,
        engine=engine,
        config=config,
        tables=tables,
        catalog=catalog,
        records=records,
        training=training,
    )
    # statistics follow every recorded data version and training set
    records.listeners.append(statistics.version_recorded)
    training.listeners.append(statistics.training_recorded)
    training.before_finish.append(statistics.settle)
    logs = FeatureLogs(tables=tables, catalog=catalog)
    monitoring = MonitoringService(
        registry=registry,
        engine=engine,
        repo=repo,
        catalog=catalog,
        records=records,
        data=data,
        training=training,
        statistics=statistics,
        logs=logs,
    )
    model_monitoring = ModelMonitoringService(
        registry=registry, files=files, runs=runs, catalog=catalog, training=training
    )
    # register_model(..., estimator_reference=...) fits the estimator through it
    models.estimators = model_monitoring
    online = OnlineService(
        registry=registry,
        engine=engine,
        config=config,
        repo=repo,
        naive=naive,
        tables=tables,
        catalog=catalog,
        records=records,
        runs=runs,
        data=data,
        training=training,
        logs=logs,
    )
    access = AccessService(registry=registry, catalog=catalog, purposes=config.purposes)
    runtime = ModelRuntime(registry=registry, catalog=catalog, files=files, training=training)
    predictions = PredictionService(
        registry=registry,
        catalog=catalog,
        tables=tables,
        runs=runs,
        training=training,
        models=models,
        runtime=runtime,
    )
    deployments = DeploymentService(
        registry=registry,
        catalog=catalog,
        models=models,
        online=online,
        predictions=predictions,
        runtime=runtime,
    )
    corpora = CorpusService(
        registry=registry, catalog=catalog, definitions=definitions, data=data, files=files
    )
    indexes = IndexService(registry=registry, corpora=corpora, repo=repo, licenses=config.licenses)
    llm = LLMService(registry=registry, corpora=corpora, indexes=indexes, repo=repo)
    return Services(
        registry=registry,
        storage=storage,
        engine=engine,
        tables=tables,
        runs=runs,
        catalog=catalog,
        records=records,
        definitions=definitions,
        data=data,
        training=training,
        versioning=versioning,
        pipelines=pipelines,
        reproduce=reproduce,
        backfill=backfill,
        models=models,
        lineage=lineage,
        history=history,
        statistics=statistics,
        logs=logs,
        monitoring=monitoring,
        model_monitoring=model_monitoring,
        online=online,
        access=access,
        evaluation=EvaluationService(registry=registry, training=training, files=files),
        predictions=predictions,
        deployments=deployments,
        llm=llm,
    )
