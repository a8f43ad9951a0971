"""The registry port: where definitions, data versions, runs and training datasets are recorded."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from featureledger.definitions.identity import VersionId
from featureledger.digest import ContentHash


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
    #: the owning process: host name and pid (empty/None for runs recorded before 0003)
    host: str = ""
    pid: int | None = None
    #: when the owner last said it is alive (None: never; the start time stands in)
    heartbeat_at: datetime | None = None


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
    #: the strategy this move set: ``canary``, ``shadow``, ``fallback`` (docs/serving.md)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> VersionId:
        return VersionId("deployment", self.name)

    @property
    def model_identity(self) -> VersionId:
        return VersionId("model", self.model, number=self.model_version)


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the audit trail; ``hash`` is its MAC (scheme ``hmac-sha256``) or, for
    entries written before the chain was keyed, its SHA-256 (scheme ``sha256``)."""

    seq: int
    at: datetime
    user: str
    action: str
    object: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    scheme: str = "hmac-sha256"


@dataclass(frozen=True)
class TokenRecord:
    """An API token of the feature server; only the SHA-256 of the secret is kept."""

    id: str
    token_hash: str
    role: str  # reader | writer | admin
    views: list[str]  # the views it reads; ["*"]: every view; empty: none (default deny)
    purpose: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class LLMRecord:
    """One numbered record of an LLM artifact (docs/llm.md): ``kind`` is chunker, embedder,
    index, index-pointer, trace, eval-set or finetune-set; ``body`` its JSON-able content."""

    kind: str
    name: str
    version: int
    body: dict[str, Any]
    created_by: str
    created_at: datetime


@runtime_checkable
class RegistryBackend(Protocol):
    """Where the store records its books: every method the store and the CLI call on a registry.

    Records are immutable once added unless a method says otherwise. Lists come back in the
    order stated, times as UTC-aware datetimes. Adding a record whose key exists raises the
    backend's integrity error (``sqlalchemy.exc.IntegrityError`` for `SQLRegistry`). Numbered
    series are gap-free and unique per series even with many writer processes at once.
    """

    #: the backend's location with any password masked: safe to print and log
    url: str

    def close(self) -> None:
        """Release connections; a later call reconnects."""
        ...

    # -- definitions ----------------------------------------------------------------------------
    def add_definition(self, record: DefinitionRecord) -> None:
        """Record one definition version; its (kind, name, major, minor, patch) is its key."""
        ...

    def definitions(self, kind: str, name: str | None = None) -> list[DefinitionRecord]:
        """Every version of ``kind`` (of one ``name``), by name then numeric semver."""
        ...

    def latest_definition(
        self, kind: str, name: str, major: int | None = None
    ) -> DefinitionRecord | None:
        """The highest version (within ``major``), or None if nothing is registered."""
        ...

    def get_definition(self, kind: str, name: str, major: int | None) -> DefinitionRecord:
        """Like `latest_definition`; raises NotFoundError naming the registered ones."""
        ...

    # -- data versions --------------------------------------------------------------------------
    def add_data_version(
        self,
        record: DataVersion,
        *,
        action: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Record a committed Delta version; (group, major, version) is recorded once.

        Its audit entry (``action``, default the operation; ``details`` plus ``record``, the
        digest of the stored row) is appended in the same transaction: both or neither."""
        ...

    def add_maintenance(
        self, group: str, major: int, version: int, operation: str, run_id: str | None, user: str
    ) -> AuditEntry:
        """Record a table commit that changes no data (vacuum start/end) with its audit
        entry (action ``maintenance``), in one transaction; it is not a data version."""
        ...

    def maintenance_versions(self, group: str, major: int) -> dict[int, str]:
        """The maintenance commits of a group major version: table version -> operation."""
        ...

    # -- pins -----------------------------------------------------------------------------------
    def add_pin(
        self, group: str, major: int, version: int, path: str, pinned: str, user: str
    ) -> AuditEntry:
        """Register that the pointer file at ``path`` (naming ``pinned``) needs data version
        ``version``; audited (action ``pin``) in the same transaction. Idempotent per path."""
        ...

    def remove_pins(self, path: str, user: str) -> list[dict[str, Any]]:
        """Forget every pin of the pointer file at ``path`` (as `pins` lists them), audited
        (action ``unpin``) in the same transaction; [] when it pinned nothing."""
        ...

    def pins(self, group: str | None = None) -> list[dict[str, Any]]:
        """Registered pins (of one group): dicts with ``group``, ``major``, ``version``,
        ``path``, ``pinned``, ``user``, ``created_at``."""
        ...

    def data_versions(self, group: str, major: int) -> list[DataVersion]:
        """The versions of one group major version, oldest first (empty if none)."""
        ...

    def data_version(self, group: str, major: int, version: int) -> DataVersion | None:
        """One data version, or None."""
        ...

    def all_data_versions(self) -> list[DataVersion]:
        """Every data version of every group, by group, major, version."""
        ...

    # -- runs -----------------------------------------------------------------------------------
    def start_run(self, record: RunRecord) -> None:
        """Record a run as it starts; its id is its key."""
        ...

    def finish_run(self, run_id: str, status: str, outputs: list[str], error: str = "") -> None:
        """Set a run's status, outputs, error and end time (an unknown id changes nothing)."""
        ...

    def run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        ...

    def runs(self, status: str | None = None) -> list[RunRecord]:
        """Every run (or those with ``status``), oldest start first."""
        ...

    def heartbeat(self, run_ids: Sequence[str]) -> None:
        """Set the heartbeat of those of ``run_ids`` still running to now."""
        ...

    def abandon_runs(self, run_ids: Sequence[str], error: str) -> list[str]:
        """Mark those of ``run_ids`` still running as ``abandoned`` (ended now, with
        ``error``); return the ids changed. A run that finished meanwhile keeps its status."""
        ...

    # -- training datasets ----------------------------------------------------------------------
    def add_training_dataset(self, record: TrainingDatasetRecord) -> TrainingDatasetRecord:
        """Store ``record`` under its view's next number (``record.number`` is ignored) and
        return it numbered; numbers are 1, 2, ... per (view, major), gap-free."""
        ...

    def training_datasets(self, view: str, major: int | None = None) -> list[TrainingDatasetRecord]:
        """The training sets of a view (one major), by major then number."""
        ...

    # -- validation reports ---------------------------------------------------------------------
    def add_validation(self, record: ValidationRecord) -> None:
        """Record one ingest's contract report; its run id is its key."""
        ...

    def validations(
        self, group: str, major: int, version: int | None = None
    ) -> list[ValidationRecord]:
        """The reports of a group major version (of one data version), oldest first."""
        ...

    # -- materializations -----------------------------------------------------------------------
    def add_materialization(
        self, group: str, major: int, store: str, version: int, rows: int, mode: str, run_id: str
    ) -> None:
        """Record that ``version`` was copied to online ``store``; the same version again
        replaces the earlier record."""
        ...

    def last_materialized(self, group: str, major: int, store: str) -> int | None:
        """The version the online copy is complete up to; None if never materialized or
        last rebuilt for a time window only (mode ``window-rebuild``)."""
        ...

    def latest_materializations(self, store: str) -> list[dict[str, Any]]:
        """Per group and major, the newest materialized version into ``store``: dicts with
        ``group``, ``major``, ``version`` and ``at``."""
        ...

    # -- monitor findings -----------------------------------------------------------------------
    def add_finding(
        self, monitor: str, target: str, status: str, blocking: bool, finding: dict[str, Any]
    ) -> int:
        """Record an open finding; returns its id (increasing, unique)."""
        ...

    def open_findings(self, monitor: str | None = None) -> list[dict[str, Any]]:
        """Unresolved findings (of one monitor), oldest first: the finding dict plus ``id``
        and ``blocking``."""
        ...

    def resolve_findings(self, monitor: str, resolution: str) -> int:
        """Close every open finding of ``monitor``; returns how many were closed."""
        ...

    # -- statistics -----------------------------------------------------------------------------
    def put_stats(self, identity: str, stats_json: str) -> None:
        """Keep the statistics JSON of an immutable identity, replacing any earlier copy."""
        ...

    def get_stats(self, identity: str) -> str | None:
        """The statistics JSON kept for ``identity``, or None."""
        ...

    # -- LLM artifacts --------------------------------------------------------------------------
    def add_llm_record(
        self,
        kind: str,
        name: str,
        body: dict[str, Any],
        *,
        user: str,
        action: str | None,
        details: dict[str, Any],
    ) -> LLMRecord:
        """Store ``body`` as the next version (1, 2, ... gap-free) of (``kind``, ``name``)
        with its audit entry (``action``, ``details``) in the same transaction; ``action``
        None writes no entry (retrieval traces: records of use, not changes)."""
        ...

    def llm_records(
        self, kind: str, name: str | None = None, *, version: int | None = None
    ) -> list[LLMRecord]:
        """Records of one kind (and name, and version), by name then version."""
        ...

    # -- models and deployments -----------------------------------------------------------------
    def add_model(self, record: ModelRecord) -> ModelRecord:
        """Store ``record`` as its name's next version (``record.version`` is ignored) and
        return it numbered; versions are 1, 2, ... per name, gap-free."""
        ...

    def models(self, name: str | None = None) -> list[ModelRecord]:
        """Registered models (of one name), by name then version."""
        ...

    def add_deployment(self, record: DeploymentRecord) -> DeploymentRecord:
        """Append a move of a deployment pointer under its name's next ``seq`` (1, 2, ...
        gap-free; ``record.seq`` is ignored) and return it numbered."""
        ...

    def deployments(self, name: str | None = None) -> list[DeploymentRecord]:
        """Deployment moves (of one name), by name then seq: the last per name is current."""
        ...

    # -- API tokens -----------------------------------------------------------------------------
    def add_token(self, record: TokenRecord) -> None:
        """Record a token; its id and its secret's hash are each unique."""
        ...

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        """The token with this SHA-256 secret hash (revoked ones too), or None."""
        ...

    def tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones included, oldest first."""
        ...

    def revoke_token(self, token_id: str) -> TokenRecord | None:
        """Mark a token revoked (a second revoke keeps the first time); None if unknown."""
        ...

    # -- audit trail ----------------------------------------------------------------------------
    def audit(self, user: str, action: str, obj: str, details: dict[str, Any]) -> AuditEntry:
        """Append an entry: seq 1, 2, ... gap-free, its HMAC-SHA256 under the audit key
        covering the previous entry's; raises ConfigError without the registry's key."""
        ...

    def audit_log(self, obj: str | None = None) -> list[AuditEntry]:
        """Entries by seq; with ``obj``, those whose object starts with it."""
        ...

    def audit_verify(self, *, against: dict[str, Any] | None = None) -> list[str]:
        """Problems in the chain (edited, forged, missing or unlinked entries), in the version
        and maintenance rows it records, and against a head checkpoint; empty when intact.
        Never raises on corrupt rows: each is named."""
        ...

    def audit_rotate_key(self, new_key: bytes, user: str, reason: str = "") -> int:
        """Re-key the chain: refuse unless it verifies under the current key, then re-MAC
        every keyed entry under ``new_key`` and append a ``re-keyed`` entry, atomically.
        Returns how many entries were re-MAC-ed; checkpoints signed before must be
        exported again."""
        ...

    def audit_head(self) -> dict[str, Any]:
        """A signed checkpoint of the newest entry (seq, MAC, count, key id, signature)."""
        ...


# user:password@ up to the last @ before the host (a stray @ in a password stays hidden), and
# a password given as a query parameter
_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^/?#]*@")
_PASSWORD_PARAM = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (``postgresql://u:***@host/db``)."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD.sub(r"\1***@", url))
