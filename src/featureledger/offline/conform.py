"""Turn what users hand us (pandas, polars, Arrow, Parquet/CSV paths) into Arrow tables that
match a definition exactly, or refuse them with a message naming every problem.

Timestamp rule: every time is stored as a UTC instant with microsecond precision.
Time-zone aware values in any zone are converted to UTC (the same instant). Naive values
are refused unless the store is configured with ``naive_timestamps: utc``, because
guessing a zone silently shifts features across the point-in-time boundary. Values with
sub-microsecond digits are refused rather than truncated, in every input format. Times
must lie in `faults.TIME_RANGE`.

Row-level faults (null keys, unparseable values, times out of range or with sub-microsecond
digits) are collected in a `RowFaults` when one is passed, so the store can hold those rows
back; without one they raise, naming the column and the rows.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
from featureledger.offline.faults import FaultKind, RowFaults, check_instants, to_text

NaivePolicy = Literal["error", "utc"]

#: the fraction of seconds in an ISO 8601 time
_FRACTION = re.compile(r"T[\d:]+[.,](\d+)")


def to_arrow(
    data: Any,
    *,
    where: str,
    column_types: dict[str, pa.DataType] | None = None,
    faults: RowFaults | None = None,
) -> pa.Table:
    """Read any supported input into one Arrow table.

    With ``column_types``, Python values (row dicts, dicts of columns, pandas object
    columns, CSV cells) are converted to the declared types; a value that does not convert
    is a row fault (its cell becomes null) when ``faults`` is given, else a `DataError`
    naming the column and the rows.
    """
    types = column_types or {}
    try:
        if isinstance(data, pa.Table):
            return data
        if isinstance(data, pa.RecordBatch):
            return pa.Table.from_batches([data])
        if isinstance(data, pa.RecordBatchReader):
            return data.read_all()
        if isinstance(data, str | os.PathLike):
            return _read_path(Path(data), where, types, faults)
        module = type(data).__module__.split(".")[0]
        if module == "pandas":
            return _from_pandas(data, where, types, faults)
        if module == "polars":
            if type(data).__name__ == "LazyFrame":
                data = data.collect()
            return data.to_arrow()
        if hasattr(data, "__arrow_c_stream__"):
            return pa.table(data)
        if isinstance(data, dict):
            return _from_columns(data, where, types, faults)
        if isinstance(data, Iterable):
            rows = list(data)
            if not rows:
                raise EmptyDataError(
                    f"{where}: the batch is an empty list: no rows; nothing to write"
                )
            if all(isinstance(r, dict) for r in rows):
                return _from_rows(rows, where, types, faults)
    except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
        # a last resort: the converters above name columns and rows where they can
        raise DataError(f"{where}: the data could not be read as a table: {exc}") from exc
    raise DataError(
        f"{where}: cannot read data of type {type(data).__name__}; pass a pandas or polars "
        "DataFrame, a pyarrow Table/RecordBatch/RecordBatchReader, a dict of columns, a list "
        "of row dicts, or the path of a Parquet or CSV file"
    )


def _from_rows(
    rows: list[dict[Any, Any]], where: str, types: dict[str, pa.DataType], faults: RowFaults | None
) -> pa.Table:
    names: dict[Any, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r))
    return _from_columns(
        {name: [r.get(name) for r in rows] for name in names}, where, types, faults
    )


def _from_columns(
    columns: dict[Any, Any],
    where: str,
    types: dict[str, pa.DataType],
    faults: RowFaults | None,
) -> pa.Table:
    bad_names = [n for n in columns if not isinstance(n, str)]
    if bad_names:
        raise SchemaMismatchError(where, [f"column names must be strings, got {bad_names[:5]}"])
    arrays = {}
    for name, values in columns.items():
        if isinstance(values, list | tuple):
            arrays[name] = convert_values(
                list(values), types.get(name), name=name, where=where, faults=faults
            )
        else:  # NumPy or Arrow arrays carry their own type; conform checks it
            arrays[name] = pa.array(values)
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        raise SchemaMismatchError(where, [f"columns have different lengths {sorted(lengths)}"])
    return pa.table(arrays) if arrays else pa.table({})


def convert_values(
    values: list[Any],
    target: pa.DataType | None,
    *,
    name: str,
    where: str,
    faults: RowFaults | None,
) -> pa.Array:
    """Python values as one Arrow array, its type inferred (`conform_batch` then checks it
    against the definition, as for any other input).

    When the values do not convert together (mixed types, integers beyond 64 bits), each
    one is checked against ``target`` (or the type of the first value that converts): those
    that do not convert exactly are faults, and their cells become null. Only a block of
    values that fails is looked at value by value.
    """
    if target is not None and pa.types.is_timestamp(target):
        values = _instants(values, name, where, faults)
        # times are inferred, so the naive-timestamp rule sees them as given
        _sub_microsecond_values(values, name, where, faults)
        target = None
    try:
        return pa.array(values)
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        pass
    if target is None:
        target = _inferred_type(values)
    bad: list[int] = []
    out: list[Any] = list(values)
    block = 1024
    for start in range(0, len(values), block):
        part = values[start : start + block]
        if _fits(part, target, name, where):
            continue
        for i, v in enumerate(part, start):
            if not _fits([v], target, name, where):
                bad.append(i)
                out[i] = None
    shown = [f"{to_text(values[i])} is not {type_name(target)}" for i in bad]
    sink = faults if faults is not None else RowFaults(where)
    sink.add(
        "unparseable", name, bad, f"has {len(bad)} value(s) that are not {type_name(target)}", shown
    )
    if faults is None:
        raise sink.error()
    return pa.array(out, target)


def _fits(values: list[Any], target: pa.DataType, name: str, where: str) -> bool:
    """Whether ``values`` convert to ``target`` with no value changed."""
    try:
        inferred = pa.chunked_array([pa.array(values)])
        return not isinstance(cast_exact(inferred, target, name=name, where=where), str)
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        return False


def _instants(values: list[Any], name: str, where: str, faults: RowFaults | None) -> list[Any]:
    """Values of a time column as datetimes: ISO 8601 strings (as JSON sends them) are
    parsed; anything else that is not a datetime is a fault (its cell becomes None)."""
    out: list[Any] = []
    bad: list[int] = []
    lossy: list[int] = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            fraction = _FRACTION.search(v)
            if fraction and fraction.group(1)[6:].strip("0"):
                # fromisoformat would drop the digits after the sixth silently
                lossy.append(i)
                v = None
            else:
                try:
                    v = datetime.fromisoformat(v)
                except ValueError:
                    bad.append(i)
                    v = None
        elif v is not None and not isinstance(v, datetime):
            bad.append(i)
            v = None
        out.append(v)
    sink = faults if faults is not None else RowFaults(where)
    if bad:
        shown = [f"{to_text(values[i])} is not a time" for i in bad]
        sink.add("unparseable", name, bad, f"has {len(bad)} value(s) that are not times", shown)
    if lossy:
        detail = f"has {len(lossy)} time(s) with sub-microsecond digits"
        sink.add("sub_microsecond", name, lossy, detail, [str(values[i]) for i in lossy])
    if sink and faults is None:
        raise sink.error()
    return out


def _inferred_type(values: list[Any]) -> pa.DataType:
    """The type of the first value that converts alone (string when none does)."""
    for v in values:
        if v is None:
            continue
        try:
            return pa.array([v]).type
        except (pa.ArrowException, OverflowError, ValueError, TypeError):
            continue
    return pa.string()


def _sub_microsecond_values(
    values: list[Any], name: str, where: str, faults: RowFaults | None
) -> None:
    """pandas Timestamps carry nanoseconds Arrow would drop silently: refuse them as
    Arrow and pandas columns are refused."""
    rows = [i for i, v in enumerate(values) if getattr(v, "nanosecond", 0)]
    if not rows:
        return
    sink = faults if faults is not None else RowFaults(where)
    sink.add(
        "sub_microsecond",
        name,
        rows,
        f"has {len(rows)} time(s) with sub-microsecond digits",
        [str(values[i]) for i in rows],
    )
    if faults is None:
        raise sink.error()


def _from_pandas(
    frame: Any, where: str, types: dict[str, pa.DataType], faults: RowFaults | None
) -> pa.Table:
    names = [str(c) for c in frame.columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SchemaMismatchError(where, [f"column(s) {dup} appear more than once"])
    if len(frame.columns) == 0:
        return pa.table({})
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowException, OverflowError, ValueError, TypeError):
        pass
    # one column did not convert as a whole: convert column by column to name it
    arrays = {}
    for column, name in zip(frame.columns, names, strict=True):
        series = frame[column]
        try:
            arrays[name] = pa.Array.from_pandas(series)
        except (pa.ArrowException, OverflowError, ValueError, TypeError):
            arrays[name] = convert_values(
                series.astype(object).where(series.notna(), None).tolist(),
                types.get(name),
                name=name,
                where=where,
                faults=faults,
            )
    return pa.table(arrays)


def _read_path(
    path: Path, where: str, column_types: dict[str, pa.DataType], faults: RowFaults | None
) -> pa.Table:
    if not path.exists():
        raise DataError(f"{where}: {path} does not exist")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in (".parquet", ".pq"):
        return _read_parquet(path, where)
    if suffix in (".csv", ".tsv", ".txt"):
        return _read_csv(path, where, column_types, faults)
    raise DataError(f"{where}: {path} is neither Parquet (.parquet) nor CSV (.csv/.tsv)")


def _read_parquet(path: Path, where: str) -> pa.Table:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    for file in files:
        try:
            names = pq.read_schema(file).names
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"{where}: {file} is not a readable Parquet file: {exc}") from exc
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SchemaMismatchError(where, [f"column(s) {dup} appear more than once in {file}"])
    try:
        return ds.dataset(str(path), format="parquet").to_table()
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{where}: {path} could not be read: {str(exc).strip()}") from exc


#: the block pyarrow reads a CSV file in; one row must fit in it
CSV_BLOCK = 1 << 24


def _read_csv(
    path: Path, where: str, column_types: dict[str, pa.DataType], faults: RowFaults | None
) -> pa.Table:
    import pyarrow.csv as pacsv

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    header = _csv_header(path, delimiter)
    dup = sorted({n for n in header if header.count(n) > 1})
    if dup:
        raise SchemaMismatchError(where, [f"column(s) {dup} appear more than once in {path}"])
    # time columns are parsed by inference so the naive-timestamp rule applies to them
    typed = {k: v for k, v in column_types.items() if not pa.types.is_timestamp(v)}

    def read(types: dict[str, pa.DataType]) -> pa.Table:
        return pacsv.read_csv(
            str(path),
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )

    try:
        return _csv_times(read(typed), column_types, where, faults)
    except pa.ArrowInvalid as exc:
        detail = str(exc).strip()
        if "straddling" in detail or "block" in detail:
            raise DataError(
                f"{where}: {path} has a row longer than {CSV_BLOCK >> 20} MiB"
                + _long_row(path, delimiter)
                + "; featureledger reads CSV rows up to that size. Check the file for an "
                "unbalanced quote (which makes the rest of the file one cell), or load "
                "values this large as Parquet."
            ) from exc
        match = re.search(r"CSV column #(\d+)", detail)
        if not match:
            raise DataError(f"{where}: {path} could not be read: {detail}") from exc
    # a cell did not parse as its declared type: read those columns as text, then convert
    # value by value, so the fault names the column and the row
    index = int(match.group(1))
    text_cols = {n: t for n, t in typed.items() if not pa.types.is_string(t)}
    try:
        table = read({**typed, **dict.fromkeys(text_cols, pa.string())})
    except pa.ArrowInvalid as again:
        column = header[index] if index < len(header) else f"#{index}"
        raise DataError(
            f"{where}: {path} could not be read: column {column!r}: {detail}"
        ) from again
    nulls = pa.array(pacsv.ConvertOptions().null_values, pa.string())
    for name, target in text_cols.items():
        if name not in table.column_names:
            continue
        col = table.column(name)
        col = pc.if_else(pc.is_in(col, nulls), pa.scalar(None, pa.string()), col)
        try:
            converted: pa.Array | pa.ChunkedArray = col.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            converted = _parse_text(col.combine_chunks(), target, name, where, faults)
        table = table.set_column(table.schema.get_field_index(name), name, converted)
    return _csv_times(table, column_types, where, faults)


def _csv_times(
    table: pa.Table, column_types: dict[str, pa.DataType], where: str, faults: RowFaults | None
) -> pa.Table:
    """Time columns that inference left as text (a cell is not a time): each cell that
    parses as an ISO 8601 time with a zone offset is kept, the others are faults."""
    import pyarrow.csv as pacsv

    for name, target in column_types.items():
        if not pa.types.is_timestamp(target) or name not in table.column_names:
            continue
        col = table.column(name)
        if not pa.types.is_string(col.type):
            continue
        nulls = pa.array(pacsv.ConvertOptions().null_values, pa.string())
        col = pc.if_else(pc.is_in(col, nulls), pa.scalar(None, pa.string()), col)
        # nanoseconds, so sub-microsecond digits are found (and refused) by the time rules
        parsed = _parse_text(col.combine_chunks(), pa.timestamp("ns", "UTC"), name, where, faults)
        table = table.set_column(table.schema.get_field_index(name), name, parsed)
    return table


def _parse_text(
    col: pa.Array, target: pa.DataType, name: str, where: str, faults: RowFaults | None
) -> pa.Array:
    """CSV text cells cast to ``target``; cells that do not parse are faults (null)."""
    bad: list[int] = []
    block = 1024
    for start in range(0, len(col), block):
        part = col.slice(start, block)
        try:
            part.cast(target)
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        for i in range(len(part)):
            try:
                part.slice(i, 1).cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                bad.append(start + i)
    # CSV rows count from 1 after the header line; positions count from 0
    shown = [f"{to_text(col[i].as_py())} is not {type_name(target)}" for i in bad]
    sink = faults if faults is not None else RowFaults(where)
    sink.add(
        "unparseable", name, bad, f"has {len(bad)} value(s) that are not {type_name(target)}", shown
    )
    if faults is None:
        raise sink.error()
    keep = np.ones(len(col), dtype=bool)
    keep[bad] = False
    return pc.if_else(pa.array(keep), col, pa.scalar(None, pa.string())).cast(target)


def _csv_header(path: Path, delimiter: str) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        line = fh.readline(1 << 20)
    return next(csv.reader([line], delimiter=delimiter), [])


def _long_row(path: Path, delimiter: str) -> str:
    """`` (line N)``: where the first over-long cell starts, when the csv module finds it."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        old = csv.field_size_limit()
        csv.field_size_limit(CSV_BLOCK)
        try:
            for _ in reader:
                pass
        except csv.Error:
            return f" (line {reader.line_num})"
        finally:
            csv.field_size_limit(old)
    return ""


def normalize_time(
    column: pa.ChunkedArray | pa.Array,
    *,
    name: str,
    where: str,
    naive: NaivePolicy,
    faults: RowFaults | None = None,
) -> pa.ChunkedArray:
    """Convert a timestamp column to UTC microseconds, or raise `TimestampError`.

    Values out of range or with sub-microsecond digits are row faults (see `check_instants`).
    """
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
    return check_instants(col, name=name, where=where, faults=faults)


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
    faults: RowFaults | None = None,
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
        faults=faults,
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
    faults: RowFaults | None = None,
) -> Conformed:
    """Check every column of ``table`` against the group's storage schema, collecting
    all problems rather than stopping at the first.

    ``optional`` names feature columns a batch may leave out (columns a minor version
    added): they are stored as nulls. ``notes`` add a hint to a missing column's problem.
    Row faults (null keys or times, unparseable values, times out of range) are problems
    too, unless ``faults`` collects them: then, when the batch has no other problem, the
    table is returned with every column nullable, for `RowFaults.split`.
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
    found = faults if faults is not None else RowFaults(where)
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
                arrays[field.name] = normalize_time(
                    col, name=field.name, where=where, naive=naive, faults=found
                )
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
        if name not in arrays or not arrays[name].null_count:
            continue
        nulls = arrays[name].is_null().to_numpy(zero_copy_only=False)
        # a cell nulled because it did not parse is already a fault of its row
        nulls[found.rows_of(name)] = False
        rows = np.flatnonzero(nulls)
        if len(rows):
            kind: FaultKind = "null_key" if name in group.primary_key else "null_time"
            found.add(kind, name, rows, f"has {len(rows)} null value(s)")
    # nullable while checking: the null checks above give the better message
    fields = [f.with_nullable(True) for f in schema if f.name in arrays]
    partial = pa.Table.from_arrays([arrays[f.name] for f in fields], schema=pa.schema(fields))
    if found and (problems or faults is None):
        # row faults nobody will split off are problems of the batch, reported with the rest
        error = found.error()
        problems.append((type(error), str(error).removeprefix(f"{where}: ")))
    if problems:
        return Conformed(None, partial, problems)
    if found:
        return Conformed(partial, partial, problems)
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
