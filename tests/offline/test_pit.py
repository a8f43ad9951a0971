"""Point-in-time joins of every engine against the plain reference (`reference.py`), on
Delta snapshots written by the project's writer: TTL edges, created-time ties, static
groups, composite keys, several groups in one join, each plan ("asof", "range", "auto")."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger.definitions import Entity, FeatureGroup, Field
from featureledger.offline import ROW_COLUMN, OfflineEngine, PitSource

from .conftest import write_group
from .reference import RefGroup, Row, reference_pit

BASE = datetime(2025, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
US = timedelta(microseconds=1)
TS = pa.timestamp("us", tz="UTC")
STRATEGIES = ["asof", "range", "merge", "auto"]

USER = Entity("user", join_keys=["user_id"])
PAIR = Entity("pair", join_keys=["user_id", Field("shop", "string")])


def group(
    name: str,
    *,
    composite: bool = False,
    static: bool = False,
    created: bool = False,
    ttl: timedelta | None = None,
) -> FeatureGroup:
    return FeatureGroup(
        name,
        PAIR if composite else USER,
        features=[Field(f"{name}_v", "float64")],
        event_time=None if static else "et",
        created_time="ct" if created and not static else None,
        ttl=None if static else ttl,
    )


def batch(fg: FeatureGroup, rows: Sequence[Row]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=fg.arrow_schema)


def source(fg: FeatureGroup, files: Sequence[str]) -> PitSource:
    return PitSource(
        files,
        fg.arrow_schema,
        fg.primary_key,
        fg.primary_key,
        fg.event_time,
        None if fg.ttl is None else fg.ttl // US,
        [(f"{fg.name}_v", f"{fg.name}_v")],
    )


def ref_group(fg: FeatureGroup, rows: Sequence[Row]) -> RefGroup:
    return RefGroup(
        rows,
        fg.primary_key,
        fg.primary_key,
        fg.event_time,
        fg.created_time,
        fg.ttl,
        [(f"{fg.name}_v", f"{fg.name}_v")],
    )


def run_join(
    engine: OfflineEngine,
    entities: Sequence[Row],
    columns: dict[str, pa.DataType],
    timestamp_column: str | None,
    sources: Sequence[PitSource],
    strategy: str,
) -> list[Row]:
    frame = pa.Table.from_pylist(list(entities), schema=pa.schema(columns))
    frame = frame.append_column(ROW_COLUMN, pa.array(range(frame.num_rows), pa.int64()))
    reader = engine.pit_join(frame, timestamp_column, sources, strategy=strategy)  # type: ignore[arg-type]
    result = reader.read_all()
    assert ROW_COLUMN not in result.column_names
    return result.to_pylist()


def check(
    engine: OfflineEngine,
    root: Path,
    groups: Sequence[tuple[FeatureGroup, Sequence[Sequence[Row]]]],
    entities: Sequence[Row],
    columns: dict[str, pa.DataType],
    strategy: str,
) -> list[Row]:
    """Write each group's batches, join, and compare with the reference row by row."""
    sources, refs = [], []
    for fg, batches in groups:
        snaps = write_group(engine, root, fg, [batch(fg, b) for b in batches])
        sources.append(source(fg, snaps[-1].files))
        refs.append(ref_group(fg, [r for b in batches for r in b]))
    ts = "t" if "t" in columns else None
    got = run_join(engine, entities, columns, ts, sources, strategy)
    want = reference_pit(entities, ts, refs)
    assert len(got) == len(want) == len(entities)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"entity row {i}: {entities[i]}"
    return got


# -- explicit cases -------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ttl_window_is_inclusive_at_both_ends(
    engine: OfflineEngine, tmp_path: Path, strategy: str
) -> None:
    fg = group("g", ttl=10 * SECOND)
    t = BASE + 100 * SECOND
    rows = [
        {"user_id": 1, "et": t - 10 * SECOND, "g_v": 1.0},  # exactly t - ttl: inside
        {"user_id": 2, "et": t - 10 * SECOND - US, "g_v": 2.0},  # 1 us too old
        {"user_id": 3, "et": t, "g_v": 3.0},  # exactly t: inside
        {"user_id": 4, "et": t + US, "g_v": 4.0},  # 1 us in the future
        {"user_id": 5, "et": t - 10 * SECOND, "g_v": 5.0},
        {"user_id": 5, "et": t + US, "g_v": 6.0},
    ]
    entities = [{"user_id": k, "t": t} for k in (1, 2, 3, 4, 5, 6)]
    got = check(
        engine, tmp_path, [(fg, [rows])], entities, {"user_id": pa.int64(), "t": TS}, strategy
    )
    assert [r["g_v"] for r in got] == [1.0, None, 3.0, None, 5.0, None]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_equal_event_times_go_to_the_greatest_created_time(
    engine: OfflineEngine, tmp_path: Path, strategy: str
) -> None:
    fg = group("g", created=True, ttl=60 * SECOND)
    e = BASE + 10 * SECOND
    first = [
        {"user_id": 1, "et": e, "ct": BASE + 5 * SECOND, "g_v": 1.0},
        {"user_id": 1, "et": e, "ct": BASE + 3 * SECOND, "g_v": 2.0},  # older correction
        {"user_id": 2, "et": e, "ct": BASE, "g_v": 3.0},
    ]
    second = [
        {"user_id": 2, "et": e, "ct": BASE + SECOND, "g_v": 4.0},  # newer: replaces 3.0
        {"user_id": 1, "et": e, "ct": BASE + 4 * SECOND, "g_v": 5.0},  # older: ignored
    ]
    entities = [{"user_id": 1, "t": e}, {"user_id": 2, "t": e + SECOND}]
    got = check(
        engine,
        tmp_path,
        [(fg, [first, second])],
        entities,
        {"user_id": pa.int64(), "t": TS},
        strategy,
    )
    assert [r["g_v"] for r in got] == [1.0, 4.0]


def test_static_group_joins_on_keys_alone(engine: OfflineEngine, tmp_path: Path) -> None:
    fg = group("s", static=True)
    rows = [{"user_id": 1, "s_v": 1.0}, {"user_id": 2, "s_v": 2.0}]
    later = [{"user_id": 1, "s_v": 10.0}]  # an upsert replaces the key's row
    entities = [{"user_id": k} for k in (2, 1, 3, 1)]
    got = check(engine, tmp_path, [(fg, [rows, later])], entities, {"user_id": pa.int64()}, "auto")
    assert [r["s_v"] for r in got] == [2.0, 10.0, None, 10.0]


def test_entity_keys_may_be_named_differently(engine: OfflineEngine, tmp_path: Path) -> None:
    fg = group("g", ttl=None)
    snaps = write_group(engine, tmp_path, fg, [batch(fg, [{"user_id": 7, "et": BASE, "g_v": 7.0}])])
    src = PitSource(
        snaps[-1].files, fg.arrow_schema, ["user_id"], ["buyer"], "et", None, [("g_v", "out")]
    )
    got = run_join(
        engine,
        [{"buyer": 7, "t": BASE + SECOND}, {"buyer": 8, "t": BASE}],
        {"buyer": pa.int64(), "t": TS},
        "t",
        [src],
        "asof",
    )
    assert got == [
        {"buyer": 7, "t": BASE + SECOND, "out": 7.0},
        {"buyer": 8, "t": BASE, "out": None},
    ]


def test_an_empty_snapshot_gives_null_features(engine: OfflineEngine, tmp_path: Path) -> None:
    fg = group("g", ttl=SECOND)
    snaps = write_group(engine, tmp_path, fg, [])
    got = run_join(
        engine,
        [{"user_id": 1, "t": BASE}],
        {"user_id": pa.int64(), "t": TS},
        "t",
        [source(fg, snaps[0].files)],
        "auto",
    )
    assert got == [{"user_id": 1, "t": BASE, "g_v": None}]


# -- generated cases ------------------------------------------------------------------------------
SHOPS = ["a", "b"]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """One to three groups (composite keys or not, static or not, with created times or
    not, TTLs from 0 to 4 s) over few keys and few whole-second times, so exact TTL edges,
    equal event times and repeated keys are common."""
    composite = draw(st.booleans())
    key_values = st.integers(0, 3)
    n_groups = draw(st.integers(1, 3))
    groups = []
    for g in range(n_groups):
        static = draw(st.booleans()) if g else False  # the first group is timed
        created = not static and draw(st.booleans())
        ttl = None if static else draw(st.sampled_from([None, 0, 1, 2, 4]))
        fg = group(
            f"g{g}",
            composite=composite,
            static=static,
            created=created,
            ttl=None if ttl is None else max(ttl, 0) * SECOND or US,
        )
        n_rows = draw(st.integers(0, 14))
        rows = []
        for i in range(n_rows):
            row: Row = {"user_id": draw(key_values), f"g{g}_v": float(i)}
            if composite:
                row["shop"] = draw(st.sampled_from(SHOPS))
            if not static:
                row["et"] = BASE + draw(st.integers(0, 8)) * SECOND
            if created:
                row["ct"] = BASE + draw(st.integers(0, 2)) * SECOND
            rows.append(row)
        cut = draw(st.integers(0, n_rows))
        groups.append((fg, [rows[:cut], rows[cut:]]))
    entities = []
    for _ in range(draw(st.integers(0, 12))):
        e: Row = {"user_id": draw(key_values), "t": BASE + draw(st.integers(0, 10)) * SECOND}
        if composite:
            e["shop"] = draw(st.sampled_from(SHOPS))
        entities.append(e)
    columns = {"user_id": pa.int64(), **({"shop": pa.string()} if composite else {}), "t": TS}
    return {"groups": groups, "entities": entities, "columns": columns}


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=scenarios())
def test_matches_the_reference(engine: OfflineEngine, strategy: str, case: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as root:
        check(engine, Path(root), case["groups"], case["entities"], case["columns"], strategy)
