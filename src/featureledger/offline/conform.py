"""Turn what users hand us (pandas, polars, Arrow, Parquet/CSV paths) into Arrow tables that
match a definition exactly, or refuse them with a message naming every problem.

Timestamp rule: every time is stored as a UTC instant with microsecond precision.
Time-zone aware values in any zone are converted to UTC (the same instant). Naive values
are refused unless the store is configured with ``naive_timestamps: utc``, because
guessing a zone silently shifts features across the point-in-time boundary. Values with
sub-microsecond digits are refused rather than truncated.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.definitions.feature_group import FeatureGroup
from featureledger.definitions.types import TIMESTAMP, _normalize, is_widening, type_name
from featureledger.errors import (
    DataError,
    EmptyDataError,
    SchemaMismatchError,
    TimestampError,
)

NaivePolicy = Literal["error", "utc"]


def to_arrow(
    data: Any, *, where: str, column_types: dict[str, pa.DataType] | None = None
) -> pa.Table:
    """Read any supported input into one Arrow table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, str | os.PathLike):
        return _read_path(Path(data), where, column_types or {})
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        if type(data).__name__ == "LazyFrame":
            data = data.collect()
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    if isinstance(data, dict):
        return pa.table(data)
    if isinstance(data, Iterable):
        rows = list(data)
        if rows and all(isinstance(r, dict) for r in rows):
            return pa.Table.from_pylist(rows)
    raise DataError(
        f"{where}: cannot read data of type {type(data).__name__}; pass a pandas or polars "
        "DataFrame, a pyarrow Table/RecordBatch/RecordBatchReader, a dict of columns, a list "
        "of row dicts, or the path of a Parquet or CSV file"
    )


def _read_path(path: Path, where: str, column_types: dict[str, pa.DataType]) -> pa.Table:
    if not path.exists():
        raise DataError(f"{where}: {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if path.is_dir() or suffix in (".parquet", ".pq"):
            import pyarrow.dataset as ds

            return ds.dataset(str(path), format="parquet").to_table()
        if suffix in (".csv", ".tsv", ".txt"):
            import pyarrow.csv as pacsv

            # time columns are parsed by inference so the naive-timestamp rule applies to them
            types = {k: v for k, v in column_types.items() if not pa.types.is_timestamp(v)}
            parse = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            try:
                return pacsv.read_csv(
                    str(path),
                    parse_options=parse,
                    convert_options=pacsv.ConvertOptions(column_types=types),
                )
            except pa.ArrowInvalid:
                if not types:
                    raise
                # a value that does not convert: read with inferred types, so the batch
                # check reports it together with the file's other problems
                return pacsv.read_csv(str(path), parse_options=parse)
    except pa.ArrowInvalid as exc:
        detail = str(exc).strip()
        match = re.search(r"CSV column #(\d+)", detail)
        if match and suffix != ".parquet":
            # Arrow counts columns; users think in names
            with open(path, newline="") as fh:
                header = next(csv.reader(fh, delimiter="\t" if suffix == ".tsv" else ","), [])
            index = int(match.group(1))
            if index < len(header):
                detail = f"column {header[index]!r}: {detail}"
        raise DataError(f"{where}: {path} could not be read: {detail}") from exc
    raise DataError(f"{where}: {path} is neither Parquet (.parquet) nor CSV (.csv/.tsv)")


def normalize_time(
    column: pa.ChunkedArray | pa.Array, *, name: str, where: str, naive: NaivePolicy
) -> pa.ChunkedArray:
    """Convert a timestamp column to UTC microseconds, or raise `TimestampError`."""
    col = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
    t = col.type
    if pa.types.is_null(t):
        return pa.chunked_array([pa.nulls(len(col), TIMESTAMP)])
    if pa.types.is_date(t):
        raise TimestampError(
            f"{where}: column {name!r} holds dates ({t}); featureledger needs instants. "
            "Convert to a UTC timestamp, e.g. midnight UTC of each date."
        )
    if not pa.types.is_timestamp(t):
        raise TimestampError(
            f"{where}: column {name!r} must hold timestamps, got {t}. Parse it first "
            "(pandas: pd.to_datetime(s, utc=True); polars: .str.to_datetime(time_zone='UTC'))."
        )
    if t.tz is None:
        if naive == "error":
            raise TimestampError(
                f"{where}: column {name!r} holds naive timestamps (no time zone), and "
                "featureledger will not guess the zone. Localize them (pandas: "
                "s.dt.tz_localize('UTC'); polars: .dt.replace_time_zone('UTC')) or set "
                "naive_timestamps: utc in featureledger.yaml to read naive values as UTC."
            )
        col = col.cast(pa.timestamp(t.unit, tz="UTC"))
    elif t.tz != "UTC":
        # same instants: Arrow stores UTC internally whatever the zone label
        col = col.cast(pa.timestamp(t.unit, tz="UTC"))
    try:
        return col.cast(TIMESTAMP, safe=True)
    except pa.ArrowInvalid as exc:
        raise TimestampError(
            f"{where}: column {name!r} has timestamps with sub-microsecond digits, which "
            "featureledger stores at microsecond precision; round them first "
            "(pandas: s.dt.floor('us'))."
        ) from exc


def cast_exact(
    column: pa.ChunkedArray, target: pa.DataType, *, name: str, where: str
) -> pa.ChunkedArray | str:
    """Cast ``column`` to ``target`` when no value changes; else return the reason."""
    if pa.types.is_dictionary(column.type):
        # pandas/polars categoricals: the values are what counts, not the encoding
        column = column.cast(column.type.value_type)
    source = _normalize(column.type)
    if source == target or pa.types.is_null(source):
        return column.cast(target)
    if is_widening(source, target):
        return column.cast(target)
    exp, got = type_name(target), type_name(source)
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        try:
            return column.cast(target, safe=True)
        except pa.ArrowInvalid:
            return f"column {name!r}: expected {exp}, got {got} with values that do not fit"
    if pa.types.is_floating(source) and pa.types.is_floating(target):
        narrowed = column.cast(target, safe=False)
        back = narrowed.cast(source)
        same = pc.or_kleene(pc.equal(back, column), pc.is_nan(column))
        if pc.all(pc.fill_null(same, True)).as_py():
            return narrowed
        return f"column {name!r}: expected {exp}, got {got} with values {exp} cannot hold exactly"
    if pa.types.is_integer(source) and pa.types.is_floating(target):
        try:
            narrowed = column.cast(target, safe=True)
            if pc.all(pc.fill_null(pc.equal(narrowed.cast(source), column), True)).as_py():
                return narrowed
        except pa.ArrowInvalid:
            pass
        return f"column {name!r}: expected {exp}, got {got} with values {exp} cannot hold exactly"
    if pa.types.is_list(source) and pa.types.is_list(target):
        flat = cast_exact(
            pa.chunked_array([c.flatten() for c in column.chunks], source.value_type),
            target.value_type,
            name=name,
            where=where,
        )
        if isinstance(flat, str):
            return flat
        return column.cast(target)
    if pa.types.is_string(source) or pa.types.is_large_string(source):
        try:
            column.cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            # Arrow's message names the first value that does not parse
            return f"column {name!r}: expected {exp}, got {got} ({exc})"
    return f"column {name!r}: expected {exp}, got {got}"


def conform_batch(
    table: pa.Table,
    group: FeatureGroup,
    *,
    where: str,
    naive: NaivePolicy,
    fill_created: pa.Scalar | None = None,
    optional: Collection[str] = (),
    notes: Mapping[str, str] | None = None,
) -> pa.Table:
    """Return ``table`` with exactly the group's storage schema, or raise a `DataError`
    naming every problem found (see `conform_parts`)."""
    parts = conform_parts(
        table,
        group,
        where=where,
        naive=naive,
        fill_created=fill_created,
        optional=optional,
        notes=notes,
    )
    parts.raise_problems(where)
    assert parts.table is not None
    return parts.table


@dataclass(frozen=True)
class Conformed:
    """A batch checked against a definition: the conformed table when there is no
    problem, the columns that did conform (for further checks), and every problem."""

    table: pa.Table | None
    partial: pa.Table
    problems: list[tuple[type[DataError], str]]

    def raise_problems(self, where: str, more: Sequence[str] = ()) -> None:
        """Raise one error naming every problem (and ``more``); nothing when clean."""
        if not self.problems and not more:
            return
        if len(self.problems) == 1 and not more:
            kind, text = self.problems[0]
            if kind is not SchemaMismatchError:  # one problem keeps its own error class
                raise kind(f"{where}: {text}")
        raise SchemaMismatchError(where, [text for _, text in self.problems] + list(more))


def conform_parts(
    table: pa.Table,
    group: FeatureGroup,
    *,
    where: str,
    naive: NaivePolicy,
    fill_created: pa.Scalar | None = None,
    optional: Collection[str] = (),
    notes: Mapping[str, str] | None = None,
) -> Conformed:
    """Check every column of ``table`` against the group's storage schema, collecting
    all problems rather than stopping at the first.

    ``optional`` names feature columns a batch may leave out (columns a minor version
    added): they are stored as nulls. ``notes`` add a hint to a missing column's problem.
    """
    if table.num_rows == 0:
        raise EmptyDataError(f"{where}: the batch has no rows; nothing to write")
    schema = group.arrow_schema
    names = table.column_names
    dup = sorted({n for n in names if names.count(n) > 1})
    problems: list[tuple[type[DataError], str]] = []
    if dup:
        problems.append((SchemaMismatchError, f"column(s) {dup} appear more than once"))
    expected = set(schema.names)
    missing = [
        n for n in schema.names if n not in names and n != group.created_time and n not in optional
    ]
    extra = [n for n in names if n not in expected]
    if missing:
        hints = [f"{n!r}: {notes[n]}" for n in missing if notes and n in notes]
        problems.append(
            (
                SchemaMismatchError,
                f"missing column(s) {missing}"
                + _hint(missing, extra)
                + (f" ({'; '.join(hints)})" if hints else ""),
            )
        )
    if extra:
        problems.append(
            (
                SchemaMismatchError,
                f"unexpected column(s) {extra}; drop them or add them to the definition",
            )
        )

    time_cols = {c for c in (group.event_time, group.created_time) if c}
    arrays: dict[str, pa.ChunkedArray] = {}
    for field in schema:
        if field.name in dup:
            continue
        if field.name not in names:
            if field.name == group.created_time and fill_created is not None:
                # created_time not supplied: stamped with the commit time
                value = pa.array([fill_created] * table.num_rows, TIMESTAMP)
                arrays[field.name] = pa.chunked_array([value])
            elif field.name in optional:  # added by a minor version: stored as null
                arrays[field.name] = pa.chunked_array([pa.nulls(table.num_rows, field.type)])
            elif field.name == group.created_time:
                problems.append((SchemaMismatchError, f"missing column(s) {[field.name]}"))
            continue
        col = table.column(field.name)
        if field.name in time_cols or pa.types.is_timestamp(field.type):
            try:
                arrays[field.name] = normalize_time(col, name=field.name, where=where, naive=naive)
            except TimestampError as exc:
                problems.append((TimestampError, str(exc).removeprefix(f"{where}: ")))
            continue
        cast = cast_exact(col, field.type, name=field.name, where=where)
        if isinstance(cast, str):
            problems.append((SchemaMismatchError, cast))
        else:
            arrays[field.name] = cast
    required = [*group.primary_key, *time_cols]
    for name in required:
        if name not in arrays:
            continue
        nulls = arrays[name].null_count
        if nulls:
            rows = np.flatnonzero(arrays[name].is_null().to_numpy(zero_copy_only=False))[
                :5
            ].tolist()
            kind = TimestampError if name in time_cols else DataError
            problems.append(
                (
                    kind,
                    f"column {name!r} has {nulls} null value(s) (rows {rows}...); "
                    f"{'keys' if name in group.primary_key else 'time columns'} may not be "
                    "null. Drop or fill those rows.",
                )
            )
    # nullable while checking: the null checks above give the better message
    fields = [f.with_nullable(True) for f in schema if f.name in arrays]
    partial = pa.Table.from_arrays([arrays[f.name] for f in fields], schema=pa.schema(fields))
    if problems:
        return Conformed(None, partial, problems)
    return Conformed(partial.cast(schema), partial, problems)


def _hint(missing: list[str], extra: list[str]) -> str:
    if len(missing) == 1 and len(extra) == 1:
        return f" (is {extra[0]!r} meant to be {missing[0]!r}? rename it)"
    return ""


def conform_entities(
    table: pa.Table,
    key_types: dict[str, pa.DataType],
    timestamp_column: str | None,
    *,
    where: str,
    naive: NaivePolicy,
) -> pa.Table:
    """Check an entity frame: join keys castable to the groups' key types, times in UTC."""
    if table.num_rows == 0:
        raise EmptyDataError(f"{where}: the entity frame has no rows")
    names = table.column_names
    problems = []
    needed = [*key_types, *([timestamp_column] if timestamp_column else [])]
    missing = [n for n in needed if n not in names]
    if missing:
        raise SchemaMismatchError(
            where,
            [
                f"entity frame lacks column(s) {missing}; it has {names}"
                + (
                    ""
                    if not timestamp_column or timestamp_column in names
                    else " (name the time column with timestamp_column=..., "
                    f"now {timestamp_column!r})"
                )
            ],
        )
    out = table
    for name, target in key_types.items():
        cast = cast_exact(out.column(name), target, name=name, where=where)
        if isinstance(cast, str):
            problems.append(cast + " (join key)")
        else:
            out = out.set_column(out.schema.get_field_index(name), name, cast)
    if problems:
        raise SchemaMismatchError(where, problems)
    if timestamp_column:
        idx = out.schema.get_field_index(timestamp_column)
        out = out.set_column(
            idx,
            timestamp_column,
            normalize_time(
                out.column(timestamp_column), name=timestamp_column, where=where, naive=naive
            ),
        )
    return out
