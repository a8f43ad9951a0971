"""A feature group's history as slowly-changing-dimension (type 2) validity intervals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions import FeatureGroup
from featureledger.errors import DataError
from featureledger.store._catalog import Catalog
from featureledger.store._records import VersionRecords
from featureledger.store._tables import Tables

TS = pa.timestamp("us", tz="UTC")


def key_filters(fg: FeatureGroup, key: Any) -> list[tuple[str, str, Any]]:
    """``key`` (a value for a one-column key, or ``{column: value}``) as scan filters, each
    value cast to its key column's type (so ``"7"`` from a command line finds ``7``)."""
    if key is None:
        return []
    names = fg.primary_key
    given: Mapping[str, Any]
    if isinstance(key, Mapping):
        given = key
    elif len(names) == 1:
        given = {names[0]: key}
    else:
        raise DataError(
            f"feature_group/{fg.name} has the composite key {list(names)}; give every part, "
            f"e.g. {dict.fromkeys(names, '...')} (on the command line "
            f"{','.join(f'{n}=...' for n in names)})"
        )
    unknown = sorted(set(given) - set(names))
    missing = [n for n in names if n not in given]
    if unknown or missing:
        raise DataError(
            f"feature_group/{fg.name}: the key is {list(names)}; "
            + (f"unknown column(s) {unknown}" if unknown else f"missing {missing}")
        )
    types = {f.name: f.arrow_type for f in fg.key_fields}
    filters = []
    for name in names:
        try:
            value = pa.scalar(given[name]).cast(types[name]).as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataError(
                f"feature_group/{fg.name}: key {name}={given[name]!r} is not a {types[name]}"
            ) from exc
        filters.append((name, "=", value))
    return filters


def validity_intervals(rows: pa.Table, fg: FeatureGroup) -> pa.Table:
    """``rows`` of ``fg`` with ``valid_from``, ``valid_to`` and ``is_current`` per key.

    A row is valid from its event time until the next event time of the same key (open,
    null, for the latest); rows of one key are ordered by event time, then created time, as
    the point-in-time join breaks ties, so a row that loses a tie gets an empty interval.
    A static group (type 0) has one row per key, valid always: both bounds null.
    """
    keys = list(fg.primary_key)
    rest = [c for c in rows.column_names if c not in keys and c != fg.event_time]
    if fg.event_time is None:
        nulls = pa.nulls(rows.num_rows, TS)
        out = rows.select(keys)
        out = out.append_column("valid_from", nulls).append_column("valid_to", nulls)
        out = out.append_column("is_current", pa.array([True] * rows.num_rows, pa.bool_()))
        return _with(out, rows, rest)
    order = [(k, "ascending") for k in keys] + [(fg.event_time, "ascending")]
    if fg.created_time:
        order.append((fg.created_time, "ascending"))
    rows = rows.take(pc.sort_indices(rows, sort_keys=order)).combine_chunks()
    n = rows.num_rows
    event = rows.column(fg.event_time).combine_chunks().cast(TS)
    if n:
        same = pa.array([True] * (n - 1), pa.bool_())
        for k in keys:
            col = rows.column(k).combine_chunks()
            same = pc.and_(same, pc.equal(col.slice(0, n - 1), col.slice(1)))
        nxt = pa.concat_arrays([event.slice(1), pa.nulls(1, TS)])
        valid_to = pc.if_else(pa.concat_arrays([same, pa.array([False])]), nxt, pa.nulls(n, TS))
    else:
        valid_to = pa.array([], TS)
    out = rows.select(keys)
    out = out.append_column("valid_from", event).append_column("valid_to", valid_to)
    out = out.append_column("is_current", pc.is_null(valid_to))
    return _with(out, rows, rest)


def _with(out: pa.Table, rows: pa.Table, columns: list[str]) -> pa.Table:
    for c in columns:
        out = out.append_column(rows.schema.field(c), rows.column(c))
    return out


class HistoryService:
    """`FeatureStore.history`: a group's rows for one key as validity intervals."""

    def __init__(self, *, catalog: Catalog, records: VersionRecords, tables: Tables) -> None:
        self.catalog = catalog
        self.records = records
        self.tables = tables

    def history(
        self,
        group: str | FeatureGroup,
        key: Any = None,
        *,
        version: int | None = None,
        major: int | None = None,
    ) -> pa.Table:
        """The rows of ``key`` (every key when None) in data version ``version`` (the
        latest by default), each with the interval ``[valid_from, valid_to)`` it was the
        key's current value; see `validity_intervals`."""
        fg = self.catalog.get_feature_group(group, major)
        resolved = self.records.resolve(fg, version, None)
        self.records.check_files(fg, resolved)
        table = self.tables.table(fg.name, fg.version or 1)
        rows = table.read(resolved, None, key_filters(fg, key))
        return validity_intervals(rows, fg)
