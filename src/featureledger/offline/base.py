"""The offline engine port: what the store asks of DuckDB (and, later, Spark)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

#: column the store adds to entity frames so results keep the frame's row order
ROW_COLUMN = "__fl_row"


@dataclass(frozen=True)
class PitSource:
    """One pinned feature-group snapshot taking part in a point-in-time join."""

    files: Sequence[str]
    schema: pa.Schema
    keys: Sequence[str]
    entity_keys: Sequence[str]
    event_time: str | None
    ttl_us: int | None
    #: (stored column, output column)
    features: Sequence[tuple[str, str]]


class OfflineEngine(Protocol):
    """Computation over pinned snapshots; storage itself is Delta Lake's."""

    name: str

    def dedupe_sorted(
        self, batch: pa.Table, unique_key: Sequence[str], created_time: str | None
    ) -> tuple[pa.Table, int]: ...

    def matching_rows(
        self,
        files: Sequence[str],
        schema: pa.Schema,
        batch: pa.Table,
        unique_key: Sequence[str],
        time_range: tuple[str, object, object] | None,
    ) -> tuple[pa.Table, pa.Array]: ...

    def pit_join(
        self,
        entities: pa.Table,
        timestamp_column: str | None,
        sources: Sequence[PitSource],
        batch_size: int = ...,
        strategy: str = ...,
    ) -> pa.RecordBatchReader: ...
