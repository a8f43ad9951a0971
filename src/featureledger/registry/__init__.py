"""Metadata: definitions, data versions, runs, training datasets and the audit trail.

`open_registry(url)` picks the backend from the URL's scheme (``sqlite:///...``,
``postgresql+psycopg://...``); every backend implements `RegistryBackend`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from featureledger.errors import ConfigError
from featureledger.registry.base import (
    AuditEntry,
    DataVersion,
    DefinitionRecord,
    DeploymentRecord,
    LLMRecord,
    ModelRecord,
    RegistryBackend,
    RunRecord,
    TokenRecord,
    TrainingDatasetRecord,
    ValidationRecord,
    mask_url,
)

if TYPE_CHECKING:
    from featureledger.registry.sql import SQLRegistry


def __getattr__(name: str) -> Any:
    if name == "SQLRegistry":
        from featureledger.registry.sql import SQLRegistry

        return SQLRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sql(url: str, audit_key: bytes | None) -> RegistryBackend:
    # imported here: SQLAlchemy costs a quarter of a second, which the light commands
    # (reading a SQLite registry through `registry.lite`) do without
    from featureledger.registry.sql import SQLRegistry

    return SQLRegistry(url, audit_key=audit_key)


#: URL scheme (the part before ``+driver``) -> a factory that opens that backend with the
#: audit key (None: the registry can be read, but writes no audit entry)
BACKENDS: dict[str, Callable[[str, bytes | None], RegistryBackend]] = {
    "sqlite": _sql,
    "postgresql": _sql,
}


def open_registry(url: str, *, audit_key: bytes | None = None) -> RegistryBackend:
    """Open (and migrate to the newest schema) the registry at ``url``; ``audit_key`` keys
    its audit chain (FeatureStore passes the repository's)."""
    scheme = url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""
    factory = BACKENDS.get(scheme)
    if factory is None:
        raise ConfigError(
            f"registry URL {mask_url(url)!r} has no supported scheme; use one of "
            f"{', '.join(f'{s}://' for s in BACKENDS)} (e.g. sqlite:///.featureledger/registry.db"
            " or postgresql+psycopg://user:password@host/db) in the `registry:` setting"
        )
    return factory(url, audit_key)


__all__ = [
    "BACKENDS",
    "AuditEntry",
    "DataVersion",
    "DefinitionRecord",
    "DeploymentRecord",
    "LLMRecord",
    "ModelRecord",
    "RegistryBackend",
    "RunRecord",
    "SQLRegistry",
    "TokenRecord",
    "TrainingDatasetRecord",
    "ValidationRecord",
    "mask_url",
    "open_registry",
]
