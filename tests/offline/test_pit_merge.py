"""The DuckDB engine's ``merge`` plan (`offline/duckdb/merge.py`) against the plain reference,
on the data shapes a join tuned to one shape could get wrong: few rows per key, many rows
per key, one hot key holding most rows, several batches (several sorted runs, files
rewritten by upserts), composite keys, static groups, null entity keys."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger.offline.duckdb import DuckDBEngine
from featureledger.offline.duckdb.merge import Run, _search, _upper_bound

from .conftest import write_group
from .reference import reference_pit
from .test_pit import BASE, SECOND, TS, US, batch, group, ref_group, run_join, source


@pytest.fixture(scope="module")
def duck() -> DuckDBEngine:
    return DuckDBEngine()


SHAPES = ["few-per-key", "many-per-key", "skewed"]


@st.composite
def shaped(draw: st.DrawFn, shape: str) -> dict[str, Any]:
    """A timed group (and sometimes a static one) whose rows follow ``shape``, written in
    one to three batches, with corrections of earlier (key, event time) pairs."""
    composite = draw(st.booleans())
    ttl_us = draw(st.sampled_from([None, 1, 3, 50, 10**6]))
    fg = group(
        "g",
        composite=composite,
        created=True,
        ttl=None if ttl_us is None else timedelta(microseconds=ttl_us),
    )
    n = draw(st.integers(0, 40))
    if shape == "few-per-key":
        keys = st.integers(0, 40)
    elif shape == "many-per-key":
        keys = st.integers(0, 2)
    else:  # one hot key holds about nine rows in ten
        keys = st.one_of(st.just(7), st.just(7), st.just(7), st.integers(0, 30))
    rows = []
    for i in range(n):
        row: dict[str, Any] = {
            "user_id": draw(keys),
            "et": BASE + draw(st.integers(0, 60)) * US,
            "ct": BASE + draw(st.integers(0, 3)) * SECOND,
            "g_v": float(i),
        }
        if composite:
            row["shop"] = draw(st.sampled_from(["a", "b"]))
        rows.append(row)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=2)))
    batches = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    groups = [(fg, batches)]
    if draw(st.booleans()):
        sg = group("s", composite=composite, static=True)
        srows = []
        for i in range(draw(st.integers(0, 8))):
            srow: dict[str, Any] = {"user_id": draw(st.integers(0, 8)), "s_v": float(i)}
            if composite:
                srow["shop"] = draw(st.sampled_from(["a", "b"]))
            srows.append(srow)
        groups.append((sg, [srows]))
    entities = []
    for _ in range(draw(st.integers(0, 25))):
        e: dict[str, Any] = {
            "user_id": draw(st.one_of(keys, st.none())),
            "t": BASE + draw(st.integers(0, 70)) * US,
        }
        if composite:
            e["shop"] = draw(st.sampled_from(["a", "b"]))
        entities.append(e)
    columns = {"user_id": pa.int64(), **({"shop": pa.string()} if composite else {}), "t": TS}
    return {"groups": groups, "entities": entities, "columns": columns}


def check_merge(duck: DuckDBEngine, root: Path, case: dict[str, Any], strategy: str) -> None:
    sources, refs, runs = [], [], []
    for fg, batches in case["groups"]:
        snaps = write_group(duck, root, fg, [batch(fg, b) for b in batches])
        sources.append(source(fg, snaps[-1].files))
        refs.append(ref_group(fg, [r for b in batches for r in b]))
        runs.append(len([b for b in batches if b]))
    got = run_join(duck, case["entities"], case["columns"], "t", sources, strategy)
    want = reference_pit(case["entities"], "t", refs)
    assert got == want
    if strategy == "merge":
        assert duck.last_plans == ["merge"] * len(sources)
    elif all(r <= 1 for r in runs):
        # one batch per group: stored sorted in one run, which auto serves by merge
        assert duck.last_plans == ["merge"] * len(sources)


@pytest.mark.parametrize("strategy", ["merge", "auto"])
@pytest.mark.parametrize("shape", SHAPES)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_merge_plan_matches_the_reference(
    duck: DuckDBEngine, shape: str, strategy: str, data: st.DataObject
) -> None:
    case = data.draw(shaped(shape))
    with tempfile.TemporaryDirectory() as root:
        check_merge(duck, Path(root), case, strategy)


def test_entity_rows_out_of_row_order_come_back_in_row_order(
    duck: DuckDBEngine, tmp_path: Path
) -> None:
    fg = group("g", ttl=None)
    rows = [{"user_id": k, "et": BASE + k * SECOND, "g_v": float(k)} for k in range(3)]
    snaps = write_group(duck, tmp_path, fg, [batch(fg, rows)])
    frame = pa.table(
        {
            "user_id": pa.array([2, 0, 1], pa.int64()),
            "t": pa.array([BASE + 9 * SECOND] * 3, TS),
            "__fl_row": pa.array([2, 0, 1], pa.int64()),
        }
    )
    got = duck.pit_join(frame, "t", [source(fg, snaps[-1].files)], strategy="merge").read_all()
    assert duck.last_plans == ["merge"]
    assert got.column("user_id").to_pylist() == [0, 1, 2]
    assert got.column("g_v").to_pylist() == [0.0, 1.0, 2.0]


def test_auto_leaves_many_runs_to_the_duckdb_plans(duck: DuckDBEngine, tmp_path: Path) -> None:
    fg = group("g", ttl=timedelta(seconds=5))
    # every batch holds every key: the files are sorted each, but not as a whole
    batches = [
        [{"user_id": k, "et": BASE + b * SECOND, "g_v": float(b)} for k in range(3)]
        for b in range(DuckDBEngine.MERGE_MAX_RUNS + 1)
    ]
    snaps = write_group(duck, tmp_path, fg, [batch(fg, b) for b in batches])
    src = source(fg, snaps[-1].files)
    entities = [{"user_id": 1, "t": BASE + 2 * SECOND}]
    columns = {"user_id": pa.int64(), "t": TS}
    for strategy, plan in (("auto", "duckdb"), ("merge", "merge")):
        got = run_join(duck, entities, columns, "t", [src], strategy)
        assert duck.last_plans == [plan]
        assert got == [{"user_id": 1, "t": BASE + 2 * SECOND, "g_v": 2.0}]


@settings(max_examples=200, deadline=None)
@given(
    segments=st.lists(st.lists(st.integers(-5, 5), max_size=12), min_size=1, max_size=6),
    queries=st.lists(st.tuples(st.integers(0, 5), st.integers(-7, 7)), max_size=30),
)
def test_upper_bound_is_searchsorted_per_segment(
    segments: list[list[int]], queries: list[tuple[int, int]]
) -> None:
    times = np.array([v for s in segments for v in sorted(s)], dtype=np.int64)
    bounds = np.cumsum([0, *[len(s) for s in segments]])
    qs = [(s % len(segments), t) for s, t in queries]
    lo = np.array([bounds[s] for s, _ in qs], dtype=np.int64)
    hi = np.array([bounds[s + 1] for s, _ in qs], dtype=np.int64)
    t = np.array([t for _, t in qs], dtype=np.int64)
    got = _upper_bound(times, lo, hi, t)
    want = [bounds[s] + int(np.searchsorted(np.sort(segments[s]), v, side="right")) for s, v in qs]
    assert got.tolist() == want


@settings(max_examples=200, deadline=None)
@given(
    segments=st.lists(st.lists(st.integers(-(2**60), 2**60), max_size=8), min_size=1, max_size=20),
    queries=st.lists(st.tuples(st.integers(0, 19), st.integers(-(2**61), 2**61)), max_size=30),
    narrow=st.booleans(),
)
def test_search_agrees_with_the_binary_search(
    segments: list[list[int]], queries: list[tuple[int, int]], narrow: bool
) -> None:
    """The composite searchsorted (narrow spans) and its fallback (spans too wide for one
    int64) give the binary search's answer, with queries before and after the run's span."""
    if narrow:  # a few microseconds: the composite path
        segments = [[v % 7 for v in s] for s in segments]
        queries = [(s, t % 11 - 2) for s, t in queries]
    segments = [s for s in segments if s] or [[0]]
    keys = np.repeat(np.arange(len(segments)), [len(s) for s in segments])
    times = np.array([v for s in segments for v in sorted(s)], dtype=np.int64)
    bounds = np.cumsum([0, *[len(s) for s in segments]])
    # the run owns its times: `_search` writes its composite over them
    run = Run([], np.zeros(1, np.int64), pa.table({"k": keys}), times.copy())
    qs = [(s % len(segments), t) for s, t in queries]
    lo = np.array([bounds[s] for s, _ in qs], dtype=np.int64)
    hi = np.array([bounds[s + 1] for s, _ in qs], dtype=np.int64)
    t = np.array([t for _, t in qs], dtype=np.int64)
    assert _search(run, lo, hi, t).tolist() == _upper_bound(times, lo, hi, t).tolist()
