"""Offline storage (Delta Lake) and engines (DuckDB)."""

from featureledger.offline.base import ROW_COLUMN, OfflineEngine, PitSource
from featureledger.offline.delta import DeltaGroupTable
from featureledger.offline.duckdb import DuckDBEngine

ENGINES = {"duckdb": DuckDBEngine}

__all__ = ["ENGINES", "ROW_COLUMN", "DeltaGroupTable", "DuckDBEngine", "OfflineEngine", "PitSource"]
