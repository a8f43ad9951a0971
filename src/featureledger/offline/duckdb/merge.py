"""The ``merge`` point-in-time plan: an as-of search over storage sorted by (keys, event time).

The writer stores every batch sorted by the group's unique key (keys, then event time), so
the files of a snapshot are runs in which each key's rows are contiguous and in event-time
order. For such a run the stored row an entity row (keys, t) needs is found without a join
over the stored rows: the entity keys are matched to the run's key segments (a hash join
over one row per key), and a binary search inside the segment finds the last event time at
or before t, vectorised over all entity rows at once. The features are then read once, row
group by row group, and taken at the found positions, already in entity order, so nothing
is sorted or re-ordered at the end.

A snapshot is one run when its files, ordered by their first key, are sorted as a whole
(one ingest, or a compaction); otherwise each file is a run and an entity row takes the
newest of its runs' candidates (storage is unique per (keys, event time), so they never tie).
A file whose rows are not in (keys, event time) order is sorted in memory first; `plan`
reports that, so ``auto`` can leave such snapshots to the DuckDB plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from featureledger.offline.base import PitSource

_E = "__fl_e"
_SEG = "__fl_seg"


@dataclass
class Run:
    """Files read as one sorted sequence: their keys and event times, concatenated."""

    files: list[str]
    #: row offset of each file in the run, and the total as the last entry
    offsets: np.ndarray
    keys: pa.Table
    #: event times as int64 microseconds, owned by the run (None for static groups, and
    #: once `_search` has written ``composite`` over them)
    times: np.ndarray | None
    #: permutation applied to sort an unsorted file (run position -> file row), else None
    order: np.ndarray | None = None
    #: True where a row's key tuple differs from the previous row's (computed once)
    change: np.ndarray | None = None
    #: segment number * ``width`` + (event time - ``t_min``): ascending over the run
    #: (`_search`); written over ``times``, which `time_at` recovers from it
    composite: np.ndarray | None = None
    t_min: int = 0
    t_max: int = 0
    width: int = 1
    #: the first key of each segment, when the run has one integer key column without
    #: nulls whose segments are strictly ascending (`_ascending_keys`), else None
    seg_keys: np.ndarray | None = None

    #: the first row of each key segment, with the run's length appended (`bounds`)
    _bounds: np.ndarray | None = None

    def changes(self) -> np.ndarray:
        if self.change is None:
            self.change = _key_changes(self.keys)
        return self.change

    def timed(self) -> bool:
        return self.times is not None or self.composite is not None

    def time_at(self, pos: np.ndarray) -> np.ndarray:
        """Event times (int64 us) at run positions."""
        if self.times is not None:
            return self.times[pos]
        assert self.composite is not None
        return self.composite[pos] % self.width + self.t_min

    def bounds(self) -> np.ndarray:
        """The first row of each segment, and the run's length as the last entry."""
        if self._bounds is None:
            self._bounds = np.append(np.flatnonzero(self.changes()), self.keys.num_rows)
        return self._bounds

    def starts(self) -> np.ndarray:
        return self.bounds()[:-1]


@dataclass
class MergePlan:
    """A group's snapshot read as sorted runs; ``sorted_as_stored`` is False when some
    file had to be sorted in memory (the plan still gives the right rows, only slower)."""

    runs: list[Run]
    sorted_as_stored: bool


def _numbers(column: pa.ChunkedArray | pa.Array, as_type: pa.DataType) -> np.ndarray:
    """A fixed-width column without nulls as one numpy array of ``as_type``'s width.

    The chunks are joined by numpy: Arrow's concatenation allocates from its memory pool,
    whose first large allocations in a process cost several times numpy's here (size l,
    80 MB: 0.3 s against 0.02 s)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [np.asarray(c.view(as_type).to_numpy()) for c in chunks]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.empty(0, dtype=as_type.to_pandas_dtype())
    return np.concatenate(parts)


def _time_us(column: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """Event times as int64 microseconds (nulls as 0), or None when the type cannot be
    read exactly."""
    t = column.type
    if not pa.types.is_timestamp(t):
        return None
    if t.unit != "us":
        try:
            column = pc.cast(column, pa.timestamp("us", t.tz))  # safe: refuses lossy ns values
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    if column.null_count:
        column = pc.fill_null(column, pa.scalar(0, column.type))
    return _numbers(column, pa.int64())


def _int_changes(col: pa.ChunkedArray) -> np.ndarray:
    """`_key_changes` of one integer column without nulls, chunk by chunk over Arrow's
    buffers: no copy of the column (a fresh 80 MB array costs 0.1-0.2 s of page faults
    here at size l)."""
    change = np.empty(len(col), dtype=bool)
    pos, prev = 0, None
    for chunk in col.chunks:
        v = np.asarray(chunk.to_numpy())
        m = len(v)
        if not m:
            continue
        change[pos] = prev is None or bool(v[0] != prev)
        np.not_equal(v[1:], v[:-1], out=change[pos + 1 : pos + m])
        prev, pos = v[-1], pos + m
    return change


def _take_ascending(col: pa.ChunkedArray, positions: np.ndarray) -> np.ndarray:
    """Values of an integer column without nulls at ascending positions, chunk by chunk."""
    out = np.empty(len(positions), dtype=col.type.to_pandas_dtype())
    lo = 0
    for chunk in col.chunks:
        hi = lo + len(chunk)
        a, b = np.searchsorted(positions, [lo, hi])
        if b > a:
            out[a:b] = np.asarray(chunk.to_numpy())[positions[a:b] - lo]
        lo = hi
    return out


def _plain_int(col: pa.ChunkedArray) -> bool:
    return pa.types.is_integer(col.type) and col.null_count == 0


def _int_key(keys: pa.Table) -> pa.ChunkedArray | None:
    """The keys' column when there is one and it is an integer without nulls, else None."""
    if keys.num_columns == 1 and _plain_int(keys.column(0)):
        return keys.column(0)
    return None


def _key_changes(keys: pa.Table) -> np.ndarray:
    """Boolean per row: True where the key tuple differs from the previous row's."""
    n = keys.num_rows
    single = _int_key(keys)
    if single is not None:
        return _int_changes(single)
    change = np.empty(n, dtype=bool)
    change[:1] = True
    if n < 2:
        return change
    change[1:] = False
    for col in keys.columns:
        if _plain_int(col):
            change[1:] |= _int_changes(col)[1:]
        else:
            arr = col.combine_chunks()
            ne = pc.not_equal(arr.slice(1), arr.slice(0, n - 1)).fill_null(True)
            change[1:] |= np.asarray(ne.to_numpy(zero_copy_only=False))
    return change


def _sorted_run(run: Run) -> bool:
    """Each key's rows contiguous and, within a key, event times ascending."""
    keys, times = run.keys, run.times
    change = run.changes()
    if times is not None:
        ordered = np.greater_equal(times[1:], times[:-1])
        ordered |= change[1:]
        if not ordered.all():
            return False
    if _ascending_keys(run):
        return True  # strictly ascending segment keys are distinct
    if keys.num_rows < 2:
        return True
    starts = keys.filter(pa.array(change))
    distinct = starts.group_by(starts.column_names).aggregate([]).num_rows
    return bool(distinct == starts.num_rows)


def _ascending_keys(run: Run) -> bool:
    """Set ``run.seg_keys`` when the run's one key column is an integer without nulls and
    its segments' keys are strictly ascending (the writer's order): entity keys are then
    matched to segments by a binary search instead of a hash join (`_match_segments`)."""
    if run.seg_keys is not None:
        return True
    single = _int_key(run.keys)
    if single is None:
        return False
    firsts = _take_ascending(single, run.starts())
    if len(firsts) > 1 and not bool(np.all(firsts[1:] > firsts[:-1])):
        return False
    run.seg_keys = firsts
    return True


def usable(entities: pa.Table, timestamp_column: str | None, src: PitSource) -> bool:
    """Whether the entity frame's keys and time can be matched exactly by this plan."""
    if src.event_time is not None and (
        timestamp_column is None or _time_us(entities.column(timestamp_column)) is None
    ):
        return False
    for ek, k in zip(src.entity_keys, src.keys, strict=True):
        if not entities.schema.field(ek).type.equals(src.schema.field(k).type):
            return False  # the DuckDB plans compare across types as SQL does
    return True


def _read_keys(
    path: str, schema: pa.Schema, keys: Sequence[str], event_time: str | None
) -> pa.Table:
    columns = [*keys, *([event_time] if event_time else [])]
    # files may differ in nullability or metadata; one schema lets them be concatenated
    return pq.read_table(path, columns=columns).cast(pa.schema([schema.field(c) for c in columns]))


def plan(src: PitSource) -> MergePlan | None:
    """Read ``src``'s keys and event times as sorted runs; None when this plan cannot
    read the snapshot exactly (object storage, files lacking a column or in another type,
    event times that are not timestamps or hold nulls)."""
    if any(len(urlsplit(f).scheme) > 1 for f in src.files):
        return None  # object storage (and file:// URIs): the DuckDB plans read those
    parts: list[tuple[str, pa.Table]] = []
    for path in src.files:
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid):
            return None
        if any(schema.get_field_index(f.name) < 0 for f in src.schema):
            return None  # older files lack a column: the DuckDB plans read it as NULL
        try:  # a column in a narrower or other string type is cast as it is read
            parts.append((path, _read_keys(path, src.schema, src.keys, src.event_time)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    if not any(t.num_rows for _, t in parts):
        return MergePlan([], True)
    if src.event_time:
        for _, t in parts:
            if t.column(src.event_time).null_count:
                return None
    whole = _as_one_run(parts, src)
    if whole is not None:
        return MergePlan([whole], True)
    runs, as_stored = [], True
    for path, table in parts:
        run = _run([path], [table], src)
        if run is None:
            return None
        if not _sorted_run(run):
            run = _sorted_in_memory(run)
            as_stored = False
        runs.append(run)
    return MergePlan(runs, as_stored)


def _run(paths: list[str], tables: list[pa.Table], src: PitSource) -> Run | None:
    offsets = np.zeros(len(tables) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([t.num_rows for t in tables])
    table = pa.concat_tables(tables) if len(tables) != 1 else tables[0]
    times = None
    if src.event_time:
        times = _time_us(table.column(src.event_time))
        if times is None:
            return None
    return Run(paths, offsets, table.select(list(src.keys)), times)


def _as_one_run(parts: list[tuple[str, pa.Table]], src: PitSource) -> Run | None:
    """The files as one run when, ordered by their first key, they are sorted as a whole."""
    filled = [(p, t) for p, t in parts if t.num_rows]

    def first_key(part: tuple[str, pa.Table]) -> tuple[object, ...]:
        return tuple(part[1].select(list(src.keys)).slice(0, 1).to_pylist()[0].values())

    try:
        filled.sort(key=first_key)
    except TypeError:
        return None  # keys that do not order in Python (nulls): one run per file
    run = _run([p for p, _ in filled], [t for _, t in filled], src)
    if run is None or not _sorted_run(run):
        return None
    return run


def _sorted_in_memory(run: Run) -> Run:
    """The run sorted by (keys, event time); ``order`` maps run positions to file rows."""
    table = run.keys
    sort_cols = [(c, "ascending") for c in table.column_names]
    if run.times is not None:
        table = table.append_column("__fl_t", pa.array(run.times))
        sort_cols.append(("__fl_t", "ascending"))
    order = np.asarray(pc.sort_indices(table, sort_keys=sort_cols).to_numpy()).astype(np.int64)
    keys = run.keys.take(pa.array(order))
    times = None if run.times is None else run.times[order]
    return Run(run.files, run.offsets, keys, times, order)


def _segments(run: Run) -> tuple[pa.Table, np.ndarray]:
    """One row per key (its columns plus ``_SEG``), and the start row of each segment with
    the run's length appended."""
    starts = run.starts()
    seg = run.keys.take(pa.array(starts)).append_column(
        _SEG, pa.array(np.arange(len(starts), dtype=np.int64))
    )
    return seg, run.bounds()


def _match_segments(
    entities: pa.Table, src: PitSource, run: Run
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entity rows whose keys the run holds: their indices, and their segments' bounds."""
    if _ascending_keys(run):
        matched = _search_segments(entities.column(src.entity_keys[0]), run)
        if matched is not None:
            return matched
    seg, bounds = _segments(run)
    probe = entities.select(list(src.entity_keys)).rename_columns(list(src.keys))
    probe = probe.append_column(_E, pa.array(np.arange(entities.num_rows, dtype=np.int64)))
    joined = probe.join(seg, list(src.keys), join_type="inner", use_threads=True)
    e = np.asarray(joined.column(_E).to_numpy())
    s = np.asarray(joined.column(_SEG).to_numpy())
    return e, bounds[s], bounds[s + 1]


def _search_segments(
    column: pa.ChunkedArray, run: Run
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """`_match_segments` by a binary search of each entity key among the run's ascending
    segment keys (size l, 2.5M keys: a fraction of the hash join's cost); None when the
    entity keys are not integers of the run's type."""
    firsts = run.seg_keys
    assert firsts is not None
    if not pa.types.is_integer(column.type) or column.type.to_pandas_dtype() != firsts.dtype:
        return None
    nulls = column.null_count
    keys = _numbers(pc.fill_null(column, 0) if nulls else column, column.type)
    # sorted queries walk ``firsts`` once instead of missing the cache at every step
    # (size l few, 1M queries over 2.5M keys: 0.12 s against 0.78 s unsorted)
    order = np.argsort(keys)
    seg = np.empty(len(keys), dtype=np.int64)
    seg[order] = np.searchsorted(firsts, keys[order])
    hit = seg < len(firsts)
    hit[hit] = firsts[seg[hit]] == keys[hit]
    if nulls:  # a NULL key matches nothing, as in SQL
        hit &= np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False))
    e = np.flatnonzero(hit)
    s = seg[e]
    bounds = run.bounds()
    return e, bounds[s], bounds[s + 1]


def _search(run: Run, lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """`_upper_bound` for a whole run. When (segment, event time) fits in one int64, one
    ``np.searchsorted`` of the sorted queries over that composite does it (half the time
    of the vectorised binary search, which is kept for runs whose times span too much)."""
    if run.composite is None:
        times = run.times
        assert times is not None
        if not len(times):
            return lo
        t_min, t_max = int(times.min()), int(times.max())
        width = t_max - t_min + 1
        if len(run.starts()) * width >= 2**62:
            return _upper_bound(times, lo, hi, t)
        run.composite = _composite(times, run.changes(), t_min, width)
        run.times, run.t_min, run.t_max, run.width = None, t_min, t_max, width
    t_min, t_max, width, n = run.t_min, run.t_max, run.width, len(run.composite)
    # segment of each query, from its range's first row; times outside the run's span
    # are clamped to it (before it: nothing at or before t; after it: everything)
    q_seg = run.composite[np.minimum(lo, n - 1)] // width
    wanted = q_seg * width + (np.clip(t, t_min - 1, t_max) - t_min)
    # sorted queries walk the run once instead of missing the cache at every step (size l:
    # 0.12 s of CPU against 1.26 s unsorted and 0.26 s for the binary search)
    order = np.argsort(wanted)
    found = np.empty_like(wanted)
    found[order] = np.searchsorted(run.composite, wanted[order], side="right")
    # empty ranges (no row of the key) stay empty
    return np.where(lo < hi, np.clip(found, lo, hi), lo)


def _composite(times: np.ndarray, change: np.ndarray, t_min: int, width: int) -> np.ndarray:
    """segment * width + (time - t_min), written over ``times`` (a copy when they are
    Arrow's read-only buffer), a million rows at a time: the segment numbers of a slice
    fit in a buffer that is reused instead of an array of the run's length."""
    out = times if times.flags.writeable else times.copy()
    step = 1 << 20
    seg = np.empty(min(step, len(out)), dtype=np.int64)
    last = -1
    for start in range(0, len(out), step):
        piece = seg[: min(step, len(out) - start)]
        # a cumsum over bools cast as it goes costs 25x one over int64: copy, then sum
        piece[:] = change[start : start + len(piece)]
        np.cumsum(piece, out=piece)
        piece += last
        last = int(piece[-1])
        piece *= width
        part = out[start : start + len(piece)]
        part -= t_min
        part += piece
    return out


def _upper_bound(times: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per query: the first position in [lo, hi) whose time is greater than t (times are
    ascending inside each range); a binary search run on all queries at once."""
    lo, hi = lo.copy(), hi.copy()
    active = np.flatnonzero(lo < hi)
    while active.size:
        a_lo, a_hi = lo[active], hi[active]
        mid = (a_lo + a_hi) >> 1
        right = times[mid] <= t[active]
        lo[active] = np.where(right, mid + 1, a_lo)
        hi[active] = np.where(right, a_hi, mid)
        active = active[lo[active] < hi[active]]
    return lo


def _found(
    entities: pa.Table, timestamp_column: str | None, src: PitSource, run: Run
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entity rows with a stored row in this run: their indices, the row's run position,
    its event time (int64 us; zeros for static groups)."""
    e, lo, hi = _match_segments(entities, src, run)
    if not run.timed() or src.event_time is None:
        return e, lo, np.zeros(len(e), dtype=np.int64)  # static: one row per key
    assert timestamp_column is not None
    ts = entities.column(timestamp_column)
    t_all = _time_us(ts)
    if t_all is None:
        raise ValueError("entity times are not timestamps")
    if ts.null_count:
        valid = np.asarray(ts.is_valid().to_numpy(zero_copy_only=False))[e]
        e, lo, hi = e[valid], lo[valid], hi[valid]
    t = t_all[e]
    pos = _search(run, lo, hi, t) - 1
    hit = pos >= lo
    e, pos, t = e[hit], pos[hit], t[hit]
    et = run.time_at(pos)
    if src.ttl_us is not None:
        fresh = et >= t - int(src.ttl_us)  # inclusive at both ends, as DESIGN.md says
        e, pos, et = e[fresh], pos[fresh], et[fresh]
    return e, pos, et


def join(
    entities: pa.Table, timestamp_column: str | None, src: PitSource, merge_plan: MergePlan
) -> pa.Table:
    """``src``'s features (output names) for every entity row, in the frame's row order."""
    n = entities.num_rows
    best_run = np.full(n, -1, dtype=np.int64)
    best_pos = np.zeros(n, dtype=np.int64)
    best_time = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    for r, run in enumerate(merge_plan.runs):
        e, pos, et = _found(entities, timestamp_column, src, run)
        newer = et > best_time[e]
        # a key's rows sit in one segment per run, so an entity row meets each run once
        e, pos, et = e[newer], pos[newer], et[newer]
        best_run[e], best_pos[e], best_time[e] = r, pos, et
    return _fetch(n, src, merge_plan, best_run, best_pos)


def _fetch(
    n: int, src: PitSource, merge_plan: MergePlan, best_run: np.ndarray, best_pos: np.ndarray
) -> pa.Table:
    """Read the features of the found rows, row group by row group, into entity order."""
    stored = [f for f, _ in src.features]
    schema = pa.schema([src.schema.field(f) for f in stored])
    chunks: list[pa.Table] = []
    owners: list[np.ndarray] = []
    for r, run in enumerate(merge_plan.runs):
        e = np.flatnonzero(best_run == r)
        if not e.size:
            continue
        pos = best_pos[e]
        if run.order is not None:
            pos = run.order[pos]
        file_of = np.searchsorted(run.offsets, pos, side="right") - 1
        for f, path in enumerate(run.files):
            mine = np.flatnonzero(file_of == f)
            if not mine.size:
                continue
            _fetch_file(path, schema, pos[mine] - run.offsets[f], e[mine], chunks, owners)
    if not chunks:
        return pa.table({out: pa.nulls(n, schema.field(f).type) for f, out in src.features})
    found = pa.concat_tables(chunks).combine_chunks()
    where = np.full(n, -1, dtype=np.int64)
    where[np.concatenate(owners)] = np.arange(found.num_rows, dtype=np.int64)
    taken = found.take(pa.array(where, mask=where < 0))
    return taken.rename_columns([out for _, out in src.features])


def _fetch_file(
    path: str,
    schema: pa.Schema,
    rows: np.ndarray,
    owners: np.ndarray,
    chunks: list[pa.Table],
    owner_chunks: list[np.ndarray],
) -> None:
    """Take ``rows`` of one file, reading only the row groups that hold some of them."""
    pf = pq.ParquetFile(path)
    meta = pf.metadata
    starts = np.zeros(meta.num_row_groups + 1, dtype=np.int64)
    starts[1:] = np.cumsum([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
    group_of = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(group_of, kind="stable")
    group_of, rows, owners = group_of[order], rows[order], owners[order]
    cuts = np.flatnonzero(np.diff(group_of)) + 1
    for idx in np.split(np.arange(len(rows)), cuts):
        g = int(group_of[idx[0]])
        wanted = pa.array(rows[idx] - starts[g])
        taken = []
        # a column at a time: the decoded column is dropped as soon as its rows are taken,
        # so the buffers are reused instead of a whole row group's being newly mapped
        # (size l, 14 features: a third less system time, 0.2 s)
        for field in schema:
            column = pf.read_row_group(g, columns=[field.name]).column(0)
            if not column.type.equals(field.type):
                # files rewritten by delta-rs merges hold string_view columns, which
                # pyarrow before 26 cannot take from
                column = column.cast(field.type)
            taken.append(column.take(wanted))
        chunks.append(pa.table(taken, schema=schema))
        owner_chunks.append(owners[idx])
