"""Metadata: definitions, data versions, runs, training datasets and the audit trail."""

from featureledger.registry.base import (
    AuditEntry,
    DataVersion,
    DefinitionRecord,
    DeploymentRecord,
    ModelRecord,
    RegistryBackend,
    RunRecord,
    TokenRecord,
    TrainingDatasetRecord,
    ValidationRecord,
)
from featureledger.registry.sql import SQLRegistry

__all__ = [
    "AuditEntry",
    "DataVersion",
    "DefinitionRecord",
    "DeploymentRecord",
    "ModelRecord",
    "RegistryBackend",
    "RunRecord",
    "SQLRegistry",
    "TokenRecord",
    "TrainingDatasetRecord",
    "ValidationRecord",
]
