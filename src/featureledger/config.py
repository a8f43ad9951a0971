"""``featureledger.yaml``: where a repository keeps its registry and tables.

Every setting has a working default, so an empty file (or none) gives the embedded
store: SQLite registry, Delta tables on local disk, DuckDB, SQLite online store.
``offline.path`` and ``training_path`` may be ``s3://bucket/prefix``; the ``storage``
section then says how to reach the object store. Credentials never go in this file:
they come from the AWS_* environment variables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from featureledger.errors import ConfigError

CONFIG_FILE = "featureledger.yaml"
STATE_DIR = ".featureledger"


@dataclass
class OfflineConfig:
    #: a key of `featureledger.offline.ENGINES`
    engine: str = "duckdb"
    path: str = f"{STATE_DIR}/offline"
    #: DuckDB memory limit such as "4GB"; unset lets DuckDB take 80% of RAM
    memory_limit: str | None = None
    #: point-in-time join plan: "auto" (per group), "merge", "asof", "range" (see pit_join)
    pit_strategy: str = "auto"
    threads: int | None = None
    temp_directory: str = f"{STATE_DIR}/tmp"
    #: engine "daft" only: None runs Daft's native runner; "local" starts a local Ray
    #: cluster; else the address of an existing one ("auto", "ray://head:10001")
    ray_address: str | None = None


@dataclass
class StorageConfig:
    """How to reach object storage named by ``s3://`` paths (no credentials here)."""

    #: URL such as http://127.0.0.1:9000 (MinIO, moto_server); unset: AWS S3 or AWS_ENDPOINT_URL
    endpoint: str | None = None
    #: unset: AWS_REGION, else us-east-1
    region: str | None = None
    #: plain HTTP to the endpoint; unset: allowed when endpoint starts with http://
    allow_http: bool | None = None
    #: further deltalake object-store options, e.g. AWS_S3_ALLOW_UNSAFE_RENAME for a
    #: server without conditional put (docs/storage.md)
    options: dict[str, str] = field(default_factory=dict)
    #: seconds after which a commit left unrecorded on object storage is recovered even
    #: when its writer may be alive on another machine (docs/storage.md, crash recovery)
    recover_after: float = 900.0

    def to_options(self) -> dict[str, Any]:
        """The options `open_storage` takes for an ``s3://`` URL."""
        out: dict[str, Any] = {
            k: v
            for k, v in (
                ("endpoint_url", self.endpoint),
                ("region", self.region),
                ("allow_http", self.allow_http),
            )
            if v is not None
        }
        if self.options:
            out["extra"] = dict(self.options)
        return out


#: words that mark a setting as a credential, which must come from the environment
_SECRET_WORDS = ("SECRET", "ACCESS_KEY", "TOKEN", "PASSWORD", "CREDENTIAL")


def is_remote_path(value: str) -> bool:
    """Whether a configured path names an object store (``s3://...``)."""
    scheme, sep, _ = value.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme != "file"


@dataclass
class OnlineConfig:
    #: "sqlite" (embedded default) or "redis"
    type: str = "sqlite"
    path: str = f"{STATE_DIR}/online.db"
    #: redis://host:port/db when type is redis
    url: str | None = None
    #: what a read does when the online store is unreachable: "none" raises
    #: OnlineStoreUnavailable (HTTP 503); "offline" serves the values of the data version
    #: last materialized, read from the offline store and flagged as such (docs/serving.md)
    fallback: str = "none"


@dataclass
class LineageConfig:
    #: OpenLineage namespace; defaults to the project name
    namespace: str | None = None
    #: where run events go: {"type": "file"} (default, .featureledger/lineage/events.jsonl),
    #: {"type": "console"}, {"type": "http", "url": ...} (Marquez) or {"type": "none"}
    transport: dict[str, Any] = field(default_factory=lambda: {"type": "file"})


@dataclass
class MonitoringConfig:
    #: statistics of each new data version and training set: "background" (computed after
    #: the commit on a worker thread), "sync" (before the write returns) or "off" (on
    #: first use only)
    stats_on_write: str = "background"


STATS_ON_WRITE = ("background", "sync", "off")


@dataclass
class RunsConfig:
    #: how often a running process records that its runs are alive
    heartbeat_seconds: float = 30.0
    #: a running run whose heartbeat is older than this is abandoned (any host); on the
    #: same host a run whose process is gone is abandoned at once
    abandon_after_seconds: float = 600.0


@dataclass
class RepoConfig:
    project: str = "default"
    registry: str = f"sqlite:///{STATE_DIR}/registry.db"
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    lineage: LineageConfig = field(default_factory=LineageConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    runs: RunsConfig = field(default_factory=RunsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    #: "error" refuses naive timestamps; "utc" reads them as UTC
    naive_timestamps: str = "error"
    #: where training-set entity frames are kept for reproduction
    training_path: str = f"{STATE_DIR}/training"
    #: licence -> uses it allows, on top of the built-in table (contracts/licenses.py)
    licenses: dict[str, list[str]] = field(default_factory=dict)
    #: purpose -> the broader purpose it is part of, e.g. {"kyc-review": "kyc"}: a token
    #: for kyc-review then reads views declared for kyc (never the reverse); purposes not
    #: declared here match only themselves (docs/serving.md, "Access model")
    purposes: dict[str, str] = field(default_factory=dict)

    def to_yaml(self) -> str:
        return yaml.safe_dump(asdict(self), sort_keys=False)

    @classmethod
    def load(cls, repo: Path) -> RepoConfig:
        path = repo / CONFIG_FILE
        if not path.exists():
            raise ConfigError(
                f"{repo} is not a featureledger repository (no {CONFIG_FILE}); "
                f"run `featureledger init {repo}` first"
            )
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level")
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = CONFIG_FILE) -> RepoConfig:
        def build(kind: type, values: Any, prefix: str) -> Any:
            if not isinstance(values, dict):
                raise ConfigError(f"{where}: {prefix or 'the file'} must be a mapping")
            known = {f.name: f for f in fields(kind)}
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise ConfigError(
                    f"{where}: unknown setting(s) {[prefix + u for u in unknown]}; "
                    f"known: {[prefix + k for k in known]}"
                )
            args = {}
            for key, value in values.items():
                nested = {
                    "offline": OfflineConfig,
                    "online": OnlineConfig,
                    "lineage": LineageConfig,
                    "monitoring": MonitoringConfig,
                    "runs": RunsConfig,
                    "storage": StorageConfig,
                }.get(key)
                if kind is RepoConfig and nested is not None:
                    args[key] = build(nested, value or {}, key + ".")
                else:
                    args[key] = value
            return kind(**args)

        config: RepoConfig = build(cls, data, "")
        if config.naive_timestamps not in ("error", "utc"):
            raise ConfigError(
                f"{where}: naive_timestamps must be 'error' or 'utc', got "
                f"{config.naive_timestamps!r}"
            )
        if config.offline.pit_strategy not in ("auto", "merge", "asof", "range"):
            raise ConfigError(
                f"{where}: offline.pit_strategy must be auto, merge, asof or range, got "
                f"{config.offline.pit_strategy!r}"
            )
        if config.monitoring.stats_on_write is False:  # YAML 1.1 reads a bare `off` as false
            config.monitoring.stats_on_write = "off"
        if config.monitoring.stats_on_write not in STATS_ON_WRITE:
            raise ConfigError(
                f"{where}: monitoring.stats_on_write must be one of {', '.join(STATS_ON_WRITE)}, "
                f"got {config.monitoring.stats_on_write!r}"
            )
        for name in ("heartbeat_seconds", "abandon_after_seconds"):
            value = getattr(config.runs, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(
                    f"{where}: runs.{name} must be a number of seconds > 0, got {value!r}"
                )
        if config.runs.abandon_after_seconds <= config.runs.heartbeat_seconds:
            raise ConfigError(
                f"{where}: runs.abandon_after_seconds ({config.runs.abandon_after_seconds}) "
                f"must be longer than runs.heartbeat_seconds ({config.runs.heartbeat_seconds}), "
                "or live runs would be abandoned"
            )
        if (
            isinstance(config.storage.recover_after, bool)
            or not isinstance(config.storage.recover_after, int | float)
            or config.storage.recover_after < 0
        ):
            raise ConfigError(
                f"{where}: storage.recover_after must be a number of seconds >= 0, got "
                f"{config.storage.recover_after!r}"
            )
        if config.online.fallback not in ("none", "offline"):
            raise ConfigError(
                f"{where}: online.fallback must be 'none' or 'offline', got "
                f"{config.online.fallback!r}"
            )
        _check_purposes(config.purposes, where)
        secret = [k for k in config.storage.options if any(w in k.upper() for w in _SECRET_WORDS)]
        if secret:
            raise ConfigError(
                f"{where}: storage.options {secret} look like credentials; remove them and "
                "set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_SESSION_TOKEN) in the "
                "environment instead, so no secret is kept in the repository"
            )
        return config

    def resolve(self, repo: Path, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else repo / path

    def location(self, repo: Path, value: str) -> str:
        """A configured path as a storage URL: object-store URLs as they are, local paths
        resolved against the repository."""
        return value.rstrip("/") if is_remote_path(value) else str(self.resolve(repo, value))

    def registry_url(self, repo: Path) -> str:
        prefix = "sqlite:///"
        if self.registry.startswith(prefix) and not self.registry.startswith(prefix + "/"):
            return prefix + str(repo / self.registry[len(prefix) :])
        return self.registry


def _check_purposes(purposes: Any, where: str) -> None:
    """``purposes`` is a mapping of names to names without a cycle."""
    if not isinstance(purposes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip()
        for k, v in purposes.items()
    ):
        raise ConfigError(
            f"{where}: purposes must map each purpose to the broader purpose it belongs to, "
            f"e.g. {{kyc-review: kyc}}; got {purposes!r}"
        )
    for start in purposes:
        chain = [start]
        while chain[-1] in purposes:
            chain.append(purposes[chain[-1]])
            if chain[-1] in chain[:-1]:
                raise ConfigError(
                    f"{where}: purposes form a cycle: {' -> '.join(chain)}; a purpose may not "
                    "be beneath itself"
                )


def create_repository(root: Path, *, project: str | None = None, exist_ok: bool = True) -> None:
    """Write ``featureledger.yaml`` and the state folder at ``root`` (nothing to do when the
    config file exists and ``exist_ok``)."""
    cfg_path = root / CONFIG_FILE
    if cfg_path.exists():
        if not exist_ok:
            raise ConfigError(f"{cfg_path} exists already; open it with FeatureStore(repo)")
        return
    root.mkdir(parents=True, exist_ok=True)
    (root / STATE_DIR).mkdir(exist_ok=True)
    config = RepoConfig(project=project or root.resolve().name or "default")
    cfg_path.write_text(
        "# featureledger repository settings; every key is optional.\n" + config.to_yaml()
    )
