"""Row-level faults of an input batch: which rows cannot be stored, and why.

A fault is a property of one row (a null key, a value that does not parse as the declared
type, a time outside the supported range, a time with sub-microsecond digits), unlike a
schema problem, which concerns the whole batch. Conversion and conformance record them in
a `RowFaults`; the store then refuses the batch (strict) or holds the faulty rows back in
quarantine (policy ``quarantine``). Positions are row positions of the input as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.types import TIMESTAMP
from featureledger.errors import DataError, TimestampError

#: the supported instants, [TIME_MIN, TIME_MAX): every value stays representable as a
#: Python datetime, a pandas/NumPy/DuckDB nanosecond timestamp, and after TTL arithmetic
TIME_MIN = datetime(1678, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2262, 1, 1, tzinfo=UTC)
TIME_RANGE = "[1678-01-01, 2262-01-01) UTC"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_SECONDS = (TIME_MIN - _EPOCH) // timedelta(seconds=1)
MAX_SECONDS = (TIME_MAX - _EPOCH) // timedelta(seconds=1)
PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}

#: the column quarantined rows carry their reasons in (shared with contract rules)
FAILED_RULES_COLUMN = "__fl_failed_rules"

FaultKind = Literal["null_key", "null_time", "unparseable", "time_range", "sub_microsecond"]

_ADVICE: dict[str, str] = {
    "null_key": "keys may not be null. Drop or fill those rows.",
    "null_time": "time columns may not be null. Drop or fill those rows.",
    "unparseable": "convert or drop those values.",
    "time_range": f"featureledger stores times in {TIME_RANGE}. Fix or drop those rows.",
    "sub_microsecond": "featureledger stores times at microsecond precision and does not "
    "truncate them; round them first (pandas: s.dt.floor('us')).",
}


@dataclass(frozen=True)
class Fault:
    """Rows of one column that cannot be stored, for one reason."""

    kind: FaultKind
    column: str
    rows: np.ndarray
    #: what was found, as it reads after "column 'x' "
    detail: str
    #: per row (same order as ``rows``): the offending value as text, or None
    values: Sequence[str | None] | None = None

    @property
    def error(self) -> type[DataError]:
        return DataError if self.kind in ("null_key", "unparseable") else TimestampError

    def reasons(self) -> list[str]:
        """One reason per row, as kept in quarantine."""
        head = f"{self.kind}({self.column})"
        if self.values is None:
            return [head] * len(self.rows)
        return [head if v is None else f"{head}: {v}" for v in self.values]


class RowFaults:
    """The faults found in one batch; empty when every row can be stored."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.faults: list[Fault] = []

    def __bool__(self) -> bool:
        return bool(self.faults)

    def add(
        self,
        kind: FaultKind,
        column: str,
        rows: np.ndarray | Sequence[int],
        detail: str,
        values: Sequence[str | None] | None = None,
    ) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows):
            self.faults.append(Fault(kind, column, rows, detail, values))

    def rows_of(self, column: str) -> np.ndarray:
        """Positions already at fault in ``column`` (their cell was nulled by conversion)."""
        found = [f.rows for f in self.faults if f.column == column]
        return np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def mask(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        for f in self.faults:
            out[f.rows] = True
        return out

    def error(self, suffix: str = "") -> DataError:
        """One error naming every fault: column, count, first rows, what to do."""
        lines = []
        for f in self.faults:
            shown = f.rows[:5].tolist()
            more = "..." if len(f.rows) > 5 else ""
            example = ""
            if f.values is not None and f.values[0] is not None:
                example = f", e.g. {f.values[0]}"
            lines.append(
                f"column {f.column!r} {f.detail} (rows {shown}{more}{example}); " + _ADVICE[f.kind]
            )
        kind = self.faults[0].error
        return kind(f"{self.where}: " + " Also: ".join(lines) + suffix)

    def split(self, table: pa.Table, schema: pa.Schema) -> tuple[pa.Table, pa.Table]:
        """``(good, held)``: good rows in ``schema``; held rows (nullable) gain
        `FAILED_RULES_COLUMN`, the reasons of each, in input order."""
        n = table.num_rows
        mask = self.mask(n)
        good = table.filter(pa.array(~mask)).cast(schema)
        positions = np.flatnonzero(mask)
        reasons: dict[int, list[str]] = {int(p): [] for p in positions}
        for f in self.faults:
            for row, reason in zip(f.rows.tolist(), f.reasons(), strict=True):
                reasons[row].append(reason)
        held = table.take(pa.array(positions, pa.int64()))
        held = self._blank(held, {int(p): i for i, p in enumerate(positions)})
        held = held.append_column(
            FAILED_RULES_COLUMN,
            pa.array([reasons[int(p)] for p in positions], pa.list_(pa.string())),
        )
        return good, held

    def _blank(self, table: pa.Table, at: dict[int, int]) -> pa.Table:
        """Null the cells of bad times: they hold a placeholder, the value is in the reason."""
        for f in self.faults:
            if f.kind not in ("time_range", "sub_microsecond"):
                continue
            blank = np.zeros(table.num_rows, dtype=bool)
            blank[[at[int(r)] for r in f.rows]] = True
            index = table.schema.get_field_index(f.column)
            column = table.column(index)
            nulls = pa.nulls(table.num_rows, column.type)
            table = table.set_column(index, f.column, pc.if_else(pa.array(blank), nulls, column))
        return table

    def annotated(self, table: pa.Table) -> pa.Table:
        """The whole batch with `FAILED_RULES_COLUMN` (null on good rows), as kept when
        a strict policy rejects it."""
        reasons: dict[int, list[str]] = {}
        for f in self.faults:
            for row, reason in zip(f.rows.tolist(), f.reasons(), strict=True):
                reasons.setdefault(row, []).append(reason)
        column = [reasons.get(i) for i in range(table.num_rows)]
        table = self._blank(table, {i: i for i in range(table.num_rows)})
        return table.append_column(FAILED_RULES_COLUMN, pa.array(column, pa.list_(pa.string())))


def describe_instant(value: int, unit: str) -> str:
    """A stored integer instant as text: ISO 8601 when Python can show it."""
    per = PER_SECOND[unit]
    try:
        whole, frac = divmod(value, per)
        shown = _EPOCH + timedelta(seconds=whole)
        digits = len(str(per)) - 1
        text = shown.replace(tzinfo=None).isoformat(timespec="seconds")
        return text + (f".{frac:0{digits}d}" if digits else "") + "Z"
    except (OverflowError, ValueError):
        return f"{value} {unit} since 1970-01-01"


def check_instants(
    column: pa.ChunkedArray, *, name: str, where: str, faults: RowFaults | None
) -> pa.ChunkedArray:
    """UTC timestamps of any unit as `TIMESTAMP` (microseconds). Values outside the
    supported range or with sub-microsecond digits are faults (raised when ``faults`` is
    None); their cells keep a placeholder, since those rows are never published."""
    unit = column.type.unit
    per = PER_SECOND[unit]
    low, high = pc.min_max(column).values()
    if not low.is_valid or (low.value >= MIN_SECONDS * per and high.value < MAX_SECONDS * per):
        try:  # the common case, one pass: a safe cast refuses sub-microsecond digits
            return column.cast(TIMESTAMP, safe=True)
        except pa.ArrowInvalid:
            pass
    # a bad batch: find the rows
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    ints = column.cast(pa.int64())
    values = np.asarray(ints.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    outside = ~nulls & ((values < MIN_SECONDS * per) | (values >= MAX_SECONDS * per))
    sub = ~nulls & ~outside & (values % 1000 != 0) if unit == "ns" else np.zeros(0, bool)
    bad: list[tuple[FaultKind, np.ndarray, str]] = []
    if outside.any():
        rows = np.flatnonzero(outside)
        bad.append(("time_range", rows, f"has {len(rows)} time(s) outside the supported range"))
    if len(sub) and sub.any():
        rows = np.flatnonzero(sub)
        bad.append(
            ("sub_microsecond", rows, f"has {len(rows)} time(s) with sub-microsecond digits")
        )
    for kind, rows, detail in bad:
        shown = [describe_instant(int(v), unit) for v in values[rows]]
        sink = faults if faults is not None else RowFaults(where)
        sink.add(kind, name, rows, detail, shown)
        if faults is None:
            raise sink.error()
    values = np.where(outside, 0, values)
    # floor division: a sub-microsecond value keeps a placeholder too (its row is held)
    micros = values // (per // 1_000_000) if per >= 1_000_000 else values * (1_000_000 // per)
    return pa.chunked_array([pa.array(micros, TIMESTAMP, mask=nulls)])


def to_text(value: Any) -> str:
    """A raw input value as short text for a message or the quarantine."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
