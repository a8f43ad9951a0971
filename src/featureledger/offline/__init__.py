"""Offline storage (Delta Lake) and the engines that compute over it (`OfflineEngine`)."""

from __future__ import annotations

from typing import Any

from featureledger.offline.base import (
    ROW_COLUMN,
    ColumnScan,
    ContractScan,
    OfflineEngine,
    PitSource,
    RuleScan,
    StatsColumn,
    StatsScan,
    WorkerWriter,
)
from featureledger.offline.delta import DeltaGroupTable
from featureledger.offline.engines import ENGINES, create_engine, default_engine, engine_factory

__all__ = [
    "ENGINES",
    "ROW_COLUMN",
    "ColumnScan",
    "ContractScan",
    "DeltaGroupTable",
    "DuckDBEngine",
    "OfflineEngine",
    "PitSource",
    "RuleScan",
    "StatsColumn",
    "StatsScan",
    "WorkerWriter",
    "create_engine",
    "default_engine",
    "engine_factory",
]


def __getattr__(name: str) -> Any:
    # the DuckDB driver is imported when an engine is made, not with the package
    if name == "DuckDBEngine":
        from featureledger.offline.duckdb import DuckDBEngine

        return DuckDBEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
