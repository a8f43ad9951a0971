"""The embedded offline engine: DuckDB over the Parquet files of pinned Delta snapshots.

One module per concern: `engine` (the `DuckDBEngine` class: writes, point-in-time joins,
windows, materialization reads, diffs), `contracts` (contract scans), `stats` (statistics
scans), `skew` (served vs recomputed rows), `_sql` (quoting and shared helpers).
"""

from featureledger.offline.duckdb._sql import q
from featureledger.offline.duckdb.engine import DuckDBEngine

__all__ = ["DuckDBEngine", "q"]
