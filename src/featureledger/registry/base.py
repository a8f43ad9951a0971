"""The registry port: where definitions, data versions, runs and training datasets are recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from featureledger.definitions.identity import VersionId
from featureledger.hashing import ContentHash


@dataclass(frozen=True)
class DefinitionRecord:
    """One registered version of a definition."""

    kind: str
    name: str
    major: int
    minor: int
    patch: int
    spec: dict[str, Any]
    spec_hash: str
    created_at: datetime
    created_by: str
    reasons: list[str] = field(default_factory=list)

    @property
    def semver(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def identity(self) -> VersionId:
        major = None if self.kind == "entity" else self.major
        return VersionId(self.kind, self.name, major)


@dataclass(frozen=True)
class DataVersion:
    """One committed write into a feature group: a Delta table version."""

    group: str
    major: int
    version: int
    operation: str
    rows: int
    rows_added: int
    rows_removed: int
    content: ContentHash
    schema_hash: str
    files: dict[str, dict[str, Any]]
    run_id: str | None
    user: str
    created_at: datetime
    note: str = ""

    @property
    def identity(self) -> VersionId:
        return VersionId("feature_group", self.group, self.major, self.version)


@dataclass(frozen=True)
class RunRecord:
    """One execution of a job, with what it read and wrote."""

    id: str
    kind: str
    status: str
    user: str
    started_at: datetime
    ended_at: datetime | None = None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    code_hash: str = ""
    env_hash: str = ""
    error: str = ""


@dataclass(frozen=True)
class TrainingDatasetRecord:
    """The immutable record of one point-in-time join."""

    view: str
    major: int
    number: int
    pins: dict[str, dict[str, Any]]
    entity_hash: str
    content: ContentHash
    rows: int
    columns: list[str]
    entity_path: str
    output_path: str | None
    run_id: str
    user: str
    created_at: datetime
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> VersionId:
        return VersionId("training_dataset", self.view, self.major, number=self.number)


@dataclass(frozen=True)
class ValidationRecord:
    """The contract report of one ingest: what passed, what was published or held back."""

    run_id: str
    group: str
    major: int
    version: int | None
    status: str  # passed | warned | quarantined | rejected
    policy: str
    rows_in: int
    rows_published: int
    rows_quarantined: int
    report: dict[str, Any]
    rejected_path: str | None
    created_at: datetime


@dataclass(frozen=True)
class ModelRecord:
    """A registered model artifact, content-addressed, linked to its training dataset."""

    name: str
    version: int
    artifact_path: str
    artifact_hash: str
    training_dataset: str | None
    metrics: dict[str, Any]
    gates: list[dict[str, Any]]
    run_id: str
    user: str
    created_at: datetime
    description: str = ""

    @property
    def identity(self) -> VersionId:
        return VersionId("model", self.name, number=self.version)


@dataclass(frozen=True)
class DeploymentRecord:
    """One move of a deployment pointer; the latest per name is the current one."""

    name: str
    seq: int
    model: str
    model_version: int
    action: str
    reason: str
    user: str
    at: datetime

    @property
    def identity(self) -> VersionId:
        return VersionId("deployment", self.name)

    @property
    def model_identity(self) -> VersionId:
        return VersionId("model", self.model, number=self.model_version)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    user: str
    action: str
    object: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class TokenRecord:
    """An API token of the feature server; only the SHA-256 of the secret is kept."""

    id: str
    token_hash: str
    role: str  # reader | writer | admin
    views: list[str]  # empty: every view
    purpose: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class RegistryBackend(Protocol):
    """What the store needs from a metadata backend."""

    def add_definition(self, record: DefinitionRecord) -> None: ...
    def definitions(self, kind: str, name: str | None = None) -> list[DefinitionRecord]: ...
    def latest_definition(
        self, kind: str, name: str, major: int | None = None
    ) -> DefinitionRecord | None: ...

    def add_data_version(self, record: DataVersion) -> None: ...
    def data_versions(self, group: str, major: int) -> list[DataVersion]: ...
    def data_version(self, group: str, major: int, version: int) -> DataVersion | None: ...
    def all_data_versions(self) -> list[DataVersion]: ...

    def start_run(self, record: RunRecord) -> None: ...
    def finish_run(self, run_id: str, status: str, outputs: list[str], error: str = "") -> None: ...
    def run(self, run_id: str) -> RunRecord | None: ...
    def runs(self) -> list[RunRecord]: ...

    def add_training_dataset(self, record: TrainingDatasetRecord) -> TrainingDatasetRecord: ...
    def training_datasets(
        self, view: str, major: int | None = None
    ) -> list[TrainingDatasetRecord]: ...

    def add_validation(self, record: ValidationRecord) -> None: ...
    def validations(
        self, group: str, major: int, version: int | None = None
    ) -> list[ValidationRecord]: ...

    def add_materialization(
        self, group: str, major: int, store: str, version: int, rows: int, mode: str, run_id: str
    ) -> None: ...
    def last_materialized(self, group: str, major: int, store: str) -> int | None: ...

    def add_finding(
        self, monitor: str, target: str, status: str, blocking: bool, finding: dict[str, Any]
    ) -> int: ...
    def open_findings(self, monitor: str | None = None) -> list[dict[str, Any]]: ...
    def resolve_findings(self, monitor: str, resolution: str) -> int: ...

    def put_stats(self, identity: str, stats_json: str) -> None: ...
    def get_stats(self, identity: str) -> str | None: ...

    def add_model(self, record: ModelRecord) -> ModelRecord: ...
    def models(self, name: str | None = None) -> list[ModelRecord]: ...
    def add_deployment(self, record: DeploymentRecord) -> DeploymentRecord: ...
    def deployments(self, name: str | None = None) -> list[DeploymentRecord]: ...

    def add_token(self, record: TokenRecord) -> None: ...
    def token_by_hash(self, token_hash: str) -> TokenRecord | None: ...
    def tokens(self) -> list[TokenRecord]: ...
    def revoke_token(self, token_id: str) -> TokenRecord | None: ...

    def audit(self, user: str, action: str, obj: str, details: dict[str, Any]) -> AuditEntry: ...
    def audit_log(self, obj: str | None = None) -> list[AuditEntry]: ...
    def audit_verify(self) -> list[str]: ...
