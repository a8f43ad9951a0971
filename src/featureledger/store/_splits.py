"""Splits of a training dataset: which part each row belongs to, and each part's hash.

Every assignment is a pure function of the spec and the rows (in their recorded order), so
a split is reproduced from the record alone: nothing but the spec, and each part's row
count and content hash, is stored (in the training record's ``params``). Reading a part
recomputes it and checks its hash. The rules are in docs/models.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.contract import format_duration
from featureledger.definitions.split import Split
from featureledger.errors import DataError, IntegrityError, NotFoundError, SplitGapWarning
from featureledger.hashing import content_hash
from featureledger.registry import TrainingDatasetRecord

#: the part index of rows inside a time split's gap
UNASSIGNED = -1
#: more label values than this is not a class label to stratify on
MAX_STRATA = 1000
_U64 = np.uint64


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a fixed, well-mixed 64-bit hash, identical on every
    platform and numpy version (unlike a seeded generator's stream)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def _shuffled(items: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation of ``items`` (non-negative integers) ordered by their hash."""
    salt = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    return items[np.argsort(_mix(items.astype(np.uint64) ^ salt), kind="stable")]


def _cuts(fractions: Sequence[float], n: int) -> np.ndarray:
    """Exact part sizes: rounded cumulative fractions of ``n``, the last one ``n``."""
    cum = np.round(np.cumsum(fractions) * n).astype(np.int64)
    cum[-1] = n
    return cum


def _by_rank(positions: np.ndarray, fractions: Sequence[float], seed: int, out: np.ndarray) -> None:
    order = _shuffled(positions, seed)
    ranks = np.arange(order.size)
    out[order] = np.searchsorted(_cuts(fractions, order.size), ranks, side="right")


def _codes(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    """One integer per distinct combination of ``columns`` (nulls are a value too)."""
    parts = []
    for name in columns:
        encoded = pc.dictionary_encode(table.column(name).combine_chunks())
        parts.append(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False))
    if len(parts) == 1:
        return parts[0].astype(np.int64) + 1
    _, inverse = np.unique(np.stack(parts, axis=1), axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    unit = column.type.unit if pa.types.is_timestamp(column.type) else "us"
    tz = column.type.tz if pa.types.is_timestamp(column.type) else None
    as_us = column.cast(pa.timestamp("us", tz), safe=False) if unit != "us" else column
    return as_us.cast(pa.int64()).to_numpy()


def assign(
    rows: pa.Table,
    spec: Split,
    *,
    label: str | None,
    keys: Sequence[str],
    timestamp_column: str | None,
    gap: timedelta,
    where: str,
) -> np.ndarray:
    """The part index of every row (`UNASSIGNED` inside a time split's gaps)."""
    n = rows.num_rows
    parts = np.full(n, UNASSIGNED, dtype=np.int64)
    positions = np.arange(n, dtype=np.int64)

    def need(column: str | None, why: str) -> str:
        if column is None or column not in rows.column_names:
            raise DataError(
                f"{where}: a {spec.kind} split needs {why}"
                + ("" if column is None else f"; column {column!r} is not in the training set")
            )
        return column

    if spec.kind == "random":
        _by_rank(positions, spec.fractions, spec.seed, parts)
    elif spec.kind == "stratified":
        column = need(spec.label or label, "a label column (label= on the call or the split)")
        strata = _codes(rows, [column])
        values = np.unique(strata)
        if values.size > MAX_STRATA:
            raise DataError(
                f"{where}: label {column!r} has {values.size:,} distinct values; stratify "
                "on a class label, or use a random or group split"
            )
        for value in values:
            at = positions[strata == value]
            sub = np.empty(at.size, dtype=np.int64)
            _by_rank(np.arange(at.size, dtype=np.int64), spec.fractions, spec.seed, sub)
            parts[at] = sub
    elif spec.kind == "group":
        columns = list(spec.by or keys)
        for c in columns:
            need(c, "entity columns (by=, default the view's join keys)")
        groups = _codes(rows, columns)
        sizes = np.bincount(groups)
        order = _shuffled(np.flatnonzero(sizes), spec.seed)
        before = np.concatenate([[0], np.cumsum(sizes[order])[:-1]])
        cuts = np.cumsum(spec.fractions) * n
        group_part = np.zeros(sizes.size, dtype=np.int64)
        group_part[order] = np.minimum(
            np.searchsorted(cuts, before, side="right"), len(spec.names) - 1
        )
        parts = group_part[groups]
    else:
        column = need(timestamp_column, "the entity frame's time column")
        times = _micros(rows.column(column))
        bounds = time_bounds(spec, times)
        step = gap // timedelta(microseconds=1)
        parts = np.searchsorted(bounds, times, side="right").astype(np.int64)
        nxt = np.append(bounds, np.iinfo(np.int64).max)[np.minimum(parts, bounds.size)]
        inside = (parts < bounds.size) & (times >= nxt - step)
        parts[inside] = UNASSIGNED
    return parts


def time_bounds(spec: Split, times: np.ndarray) -> np.ndarray:
    """A time split's boundaries in microseconds: given, or the time quantiles."""
    if spec.boundaries:
        return np.array([b // timedelta(microseconds=1) for b in _since_epoch(spec)], np.int64)
    ordered = np.sort(times)
    if not ordered.size:
        return np.zeros(len(spec.names) - 1, dtype=np.int64)
    at = np.minimum(_cuts(spec.fractions, ordered.size)[:-1], ordered.size - 1)
    return ordered[at]


def _since_epoch(spec: Split) -> list[timedelta]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return [b - epoch for b in spec.boundaries]


def choose_gap(spec: Split, minimum: timedelta, where: str) -> timedelta:
    """The gap of a time split: the user's, warned about when below ``minimum`` (the
    longest TTL of the view's groups), else ``minimum``."""
    if spec.kind != "time":
        return timedelta(0)
    if spec.gap is None:
        return minimum
    if spec.gap < minimum:
        warnings.warn(
            SplitGapWarning(
                f"{where}: split gap {format_duration(spec.gap) or '0s'} is shorter than the "
                f"longest ttl of the view's groups ({format_duration(minimum)}): features of "
                "rows just after a boundary can see events of the part before it; leave "
                "gap= out to use the ttl"
            ),
            stacklevel=4,
        )
    return spec.gap


def describe_parts(
    rows: pa.Table, spec: Split, parts: np.ndarray, gap: timedelta, minimum: timedelta
) -> dict[str, Any]:
    """What the record keeps of a split: the spec, the gap, each part's rows and hash."""
    out: dict[str, Any] = {}
    for i, name in enumerate(spec.names):
        part = rows.take(np.flatnonzero(parts == i))
        out[name] = {"rows": part.num_rows, "content": str(content_hash(part))}
    return {
        "spec": spec.to_dict(),
        "gap_seconds": gap.total_seconds(),
        "min_gap_seconds": minimum.total_seconds(),
        "unassigned": int(np.count_nonzero(parts == UNASSIGNED)),
        "parts": out,
    }


def part_names(record: TrainingDatasetRecord) -> list[str]:
    return list(record.params.get("split", {}).get("parts", {}))


def check_part(record: TrainingDatasetRecord, name: str) -> None:
    names = part_names(record)
    if name not in names:
        have = f"its parts are {names}" if names else "it was built without split="
        raise NotFoundError(f"{record.identity}:{name} does not exist; {have}")


def part_rows(record: TrainingDatasetRecord, rows: pa.Table, name: str) -> pa.Table:
    """The rows of part ``name``, recomputed from the recorded spec and checked against
    the recorded content hash."""
    check_part(record, name)
    split = record.params["split"]
    spec = Split.from_dict(split["spec"])
    parts = assign(
        rows,
        spec,
        label=record.params.get("label"),
        keys=record.params.get("keys", []),
        timestamp_column=record.params.get("timestamp_column"),
        gap=timedelta(seconds=split["gap_seconds"]),
        where=str(record.identity),
    )
    part = rows.take(np.flatnonzero(parts == spec.names.index(name)))
    expected = split["parts"][name]["content"]
    got = str(content_hash(part))
    if got != expected:
        raise IntegrityError(
            f"{record.identity}:{name}: the recomputed part hashes to {got}, the record says "
            f"{expected}; the stored rows changed or the split code differs; run "
            f"`featureledger verify {record.identity}`"
        )
    return part
