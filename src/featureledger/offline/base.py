"""The offline engine port: every computation the store and the packages above it ask of an
engine, as semantic operations over pinned data (Delta snapshot file lists, Arrow tables,
Arrow datasets), never as "run this SQL". DuckDB implements it (`offline/duckdb/`); a
dataframe engine without SQL can too (issue 13: Daft on Ray).

Storage itself is Delta Lake's (`offline/delta.py`): engines read the Parquet files of a
snapshot and return Arrow; they never commit. Two inputs are SQL by the user's own choice
and stay SQL for every engine: a pipeline's `SQLTransform` query and a contract's `Check`
expression (an engine without SQL declares them not implemented).

Conventions shared by every method: timestamps are UTC microseconds and results carry the
caller's declared Arrow types; key equality never matches NULL to NULL; "snapshot" means
``(files, schema)``, the Parquet files of one Delta version and its schema (files written
before a column was added read it as NULL, narrower stored types are widened).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pyarrow.dataset as pads

from featureledger.definitions.contract import Rule
from featureledger.hashing import ContentHash

#: column the store adds to entity frames so results keep the frame's row order
ROW_COLUMN = "__fl_row"

#: column kinds a statistics scan distinguishes (`monitoring.stats.column_kind`)
StatsKind = Literal["numeric", "categorical", "temporal", "other"]


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


@dataclass(frozen=True)
class StatsColumn:
    """One column a statistics scan measures (`OfflineEngine.column_stats`)."""

    name: str
    kind: StatsKind
    #: numeric: quantiles to compute over the finite values (linear interpolation)
    probs: tuple[float, ...] = ()
    #: numeric: histogram edges e_0..e_n; None takes the quantiles at ``edge_probs``
    edges: tuple[float, ...] | None = None
    #: numeric without ``edges``: which of ``probs`` are the edges, in order
    edge_probs: tuple[float, ...] = ()
    #: categorical: values counted even when outside the top-k
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnScan:
    """What a statistics scan measured for one column (fields not measured stay empty).

    Numeric measures (``finite`` ... ``bins``) are over the finite values only (NaN and
    infinities excluded); ``min``/``max`` of temporal columns are the extreme instants.
    """

    #: non-null values
    nonnull: int
    #: approximate (HyperLogLog) distinct non-null values; None for kind "other"
    distinct: int | None = None
    finite: int = 0
    min: Any = None
    max: Any = None
    mean: float | None = None
    #: sample standard deviation (n - 1), None below two values
    std: float | None = None
    #: one value per `StatsColumn.probs`, empty when no finite value exists
    quantiles: tuple[float, ...] = ()
    #: bin index -> count, 0 below e_0, k for [e_(k-1), e_k), n for the closed last bin
    #: [e_(n-1), e_n], n + 1 above e_n; bins without values may be absent
    bins: Mapping[int, int] = field(default_factory=dict)
    #: categorical: (value as text, count) of the ``top_k`` most frequent values (ties to
    #: the smaller text) plus each asked-for category present, most frequent first
    top: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class StatsScan:
    rows: int
    columns: Mapping[str, ColumnScan]


@dataclass(frozen=True)
class RuleScan:
    """What an engine measured for one contract rule (`OfflineEngine.contract_scan`)."""

    #: rows failing a rule with a per-row test; None for rules without one
    failed: int | None = None
    #: the rule's measurements, by the keys `OfflineEngine.contract_scan` lists
    observed: Mapping[str, Any] = field(default_factory=dict)
    #: ascending positions of every failing row, when ``failed`` > 0
    failing_rows: np.ndarray | None = None
    #: why the rule could not be evaluated (e.g. a `Check` expression that does not run)
    error: str | None = None


@dataclass(frozen=True)
class ContractScan:
    rows: int
    rules: tuple[RuleScan, ...]


class OfflineEngine(Protocol):
    """Computation over pinned snapshots and Arrow data; see the module docstring."""

    name: str

    # -- writes (the caller commits the result to Delta) -------------------------------------
    def dedupe_sorted(
        self, batch: pa.Table, unique_key: Sequence[str], created_time: str | None
    ) -> tuple[pa.Table, int]:
        """One row per ``unique_key`` (greatest ``created_time``, then the later row), sorted
        by ``unique_key``, in ``batch``'s schema and one chunk; plus the rows dropped."""
        ...

    def matching_rows(
        self,
        files: Sequence[str],
        schema: pa.Schema,
        batch: pa.Table,
        unique_key: Sequence[str],
        time_range: tuple[str, object, object] | None,
    ) -> tuple[pa.Table, pa.Array]:
        """Stored rows of the snapshot sharing a ``unique_key`` with a row of ``batch``
        (only those with ``time_range[0]`` in [lo, hi] when given), in ``schema``, and the
        int64 batch position of each, ascending."""
        ...

    # -- reads for training, serving and pipelines -------------------------------------------
    def pit_join(
        self,
        entities: pa.Table,
        timestamp_column: str | None,
        sources: Sequence[PitSource],
        batch_size: int = ...,
        strategy: str = ...,
    ) -> pa.RecordBatchReader:
        """Point-in-time join (DESIGN.md): per entity row (keys, t) and source, the stored row
        with the greatest event time e, t - ttl <= e <= t (no lower bound without a TTL);
        static sources (no event time): the row with equal keys (``timestamp_column`` is
        None only when every source is static).
        No such row: NULL features. Output: the entity columns but `ROW_COLUMN`, then each
        source's features, one row per entity row in `ROW_COLUMN` order. Storage is unique
        on (keys, event time), so no tie remains. ``strategy`` ("auto", "merge", "asof",
        "range") picks a plan; every plan gives the same rows, and engines with one plan
        ignore it."""
        ...

    def window(
        self,
        source: Sequence[str] | str,
        schema: pa.Schema | None,
        timestamp_column: str,
        start: object,
        end: object,
    ) -> pa.Table:
        """Rows with start <= ``timestamp_column`` < end of a snapshot (file list with its
        ``schema``) or of a Parquet file, Parquet folder or CSV file path."""
        ...

    def transform(self, query: str, source: pa.Table, params: dict[str, object]) -> pa.Table:
        """A pipeline's SQL transformation: ``query`` over the table ``source``, binding
        ``$name`` for each ``params`` entry the query uses."""
        ...

    def latest_rows(
        self,
        files: Sequence[str],
        schema: pa.Schema,
        keys: Sequence[str],
        event_time: str | None,
        columns: Sequence[str],
        batch_size: int = ...,
        *,
        start: datetime | None = ...,
        end: datetime | None = ...,
    ) -> pa.RecordBatchReader:
        """``columns`` of rows from which a latest-wins online store ends up holding the
        newest row per key (the newest per key, or every row when that is cheaper), only
        rows with ``start`` <= event time <= ``end`` when given; static groups: every row."""
        ...

    # -- comparing, profiling and checking ---------------------------------------------------
    def diff(
        self,
        old: tuple[Sequence[str], pa.Schema],
        new: tuple[Sequence[str], pa.Schema],
        unique_key: Sequence[str],
        examples: int = ...,
    ) -> dict[str, object]:
        """Two snapshots joined on ``unique_key``: ``added``, ``removed``, ``changed``,
        ``unchanged`` row counts, ``changed_by_column`` (common non-key columns, NULL equal
        to NULL), ``examples`` (up to ``examples`` smallest keys per kind, as dicts) and
        ``stats`` {"old"|"new": {column: count, nulls, distinct (approximate), min, max,
        mean}} (min/max for numbers, strings and timestamps; mean for numbers)."""
        ...

    def column_stats(
        self, data: pa.Table | pads.Dataset, columns: Sequence[StatsColumn], *, top_k: int
    ) -> StatsScan:
        """One statistics scan of ``data`` (a dataset is streamed, never held whole): the
        row count and a `ColumnScan` per requested column."""
        ...

    def contract_scan(self, table: pa.Table, rules: Sequence[Rule]) -> ContractScan:
        """Measure each rule on ``table``, one `RuleScan` per rule in order. The caller
        passes only rules whose columns exist, and `Unique` rules with their columns.

        ``failed`` counts rows where: NotNull: the value is NULL; Range: a non-null value
        lies outside [min, max] (NaN is outside every range of a float column); AllowedValues:
        a non-null value is not listed; Regex: a non-null value (as text) does not fully
        match; Unique: every column is non-null and the combination repeats; Check: the SQL
        expression is false (NULL passes); IngestionDelay: created - event > max_delay.
        ``observed``: MaxNullFraction ``nulls``; Range ``min``, ``max``; AllowedValues
        ``unexpected_distinct``; Unique ``duplicate_keys`` (combinations that repeat);
        Cardinality ``distinct`` (exact, non-null); Freshness ``newest`` (the maximum);
        IngestionDelay ``max_delay_us``. Other rules (types, distributions, row counts)
        are judged by the caller and get an empty `RuleScan`."""
        ...

    def skew_pairs(
        self,
        offline: pa.Table,
        online: pa.Table,
        join: Sequence[str],
        features: Sequence[str],
        *,
        tolerance: float,
        event_time: str | None = None,
        history: pa.Table | None = None,
        history_time: str = ...,
        request_time: str | None = None,
        entity_keys: Sequence[str] = (),
    ) -> pa.Table:
        """Served (``online``) rows beside the recomputed (``offline``, unique on ``join``)
        row with equal ``join`` values, one row per served row in served order: the join
        columns, ``on{i}``/``off{i}`` per feature i, ``__fl_present`` (true, or NULL when no
        offline row matched), ``__fl_on_et``/``__fl_off_et`` (``event_time`` of each side)
        when given, and with ``history`` ``__fl_hist{i}``: whether a history row of the same
        ``entity_keys``, older than the offline ``event_time`` (or, without one, not after
        the served ``request_time``), holds the served value (numbers within ``tolerance`` *
        max(1, |history value|)); the caller gives one of the two."""
        ...

    def close(self) -> None:
        """Release what the engine holds (connections, caches, clusters)."""
        ...


@runtime_checkable
class WorkerWriter(Protocol):
    """An engine whose workers write a join's result themselves (Daft on Ray): training
    data larger than the driver's memory never passes through it."""

    def pit_join_to(
        self,
        entities: pa.Table,
        timestamp_column: str | None,
        sources: Sequence[PitSource],
        directory: str,
    ) -> tuple[list[str], ContentHash]:
        """`OfflineEngine.pit_join`'s rows written as Parquet files under ``directory``
        (a new folder), each row with its `ROW_COLUMN` so the entity order can be restored
        on read; the files, and the ``flh1`` content hash of the rows without `ROW_COLUMN`
        (equal to `content_hash` of `pit_join`'s result: the hash ignores order and layout)."""
        ...


@dataclass(frozen=True)
class WrittenFile:
    """One Parquet data file an engine's workers wrote into a table's folder, not yet in
    its log: what the driver needs to commit it (`DeltaGroupTable.commit_files`)."""

    #: relative to the table's folder
    path: str
    size: int
    rows: int
    #: Delta's per-file statistics as JSON (numRecords, minValues, maxValues, nullCount)
    stats: str
    sha256: str
    #: ``flh1`` hash of the file's rows
    content: ContentHash


@runtime_checkable
class FileWriter(Protocol):
    """An engine whose workers write a commit's data files themselves (Daft on Ray); the
    driver then makes one Delta commit of their metadata (`versioning.writer`)."""

    def write_files(
        self,
        table_uri: str,
        schema: pa.Schema,
        sort_by: Sequence[str],
        rows: pa.Table,
        carry: tuple[Sequence[str], pa.Table] | None = None,
    ) -> list[WrittenFile]:
        """Parquet files under ``table_uri`` holding ``rows`` and, with ``carry`` =
        (files, keys), the rows of those stored files whose ``sort_by`` values are not
        among ``keys``' rows; each file sorted by ``sort_by``, in ``schema`` (timestamps
        in microseconds). Nothing is committed."""
        ...

    def files_holding(self, files: Sequence[str], schema: pa.Schema, keys: pa.Table) -> list[str]:
        """Those of ``files`` holding a row whose ``keys.column_names`` values equal a row
        of ``keys``, in the order of ``files``."""
        ...

    def content_of(self, files: Sequence[str], schema: pa.Schema) -> ContentHash:
        """The ``flh1`` hash of the rows in ``files`` read in ``schema``."""
        ...
