"""Point-in-time joins checked against a brute-force reference (DESIGN.md, "Semantics that
must be exact").

The reference works from the raw batches as ingested, so it checks storage de-duplication
(one row per key and event time: the greatest created_time wins, ties go to the later write)
as well as the join: for an entity row (keys, t) and a group with TTL d, the stored row with
the greatest event time e such that t - d <= e <= t, else NULL features.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field, content_hash

BASE = datetime(2024, 3, 1, tzinfo=UTC)
TS = "event_timestamp"
CREATED = "created"
US = timedelta(microseconds=1)

USER = Entity("user", join_keys=["user_id"])
MERCHANT = Entity("merchant", join_keys=[Field("merchant_id", "string")])

Row = dict[str, Any]


def at(us: int) -> datetime:
    """The instant ``us`` microseconds after BASE."""
    return BASE + us * US


# -- the reference -----------------------------------------------------------------------------
def stored_rows(group: FeatureGroup, batches: Sequence[Sequence[Row]]) -> list[Row]:
    """What storage must hold after ingesting ``batches`` in order (upsert).

    One row per (key, event time): a later row replaces an earlier one unless its
    created_time is older, so the greatest created_time wins and ties go to the later write.
    """
    winners: dict[tuple[Any, ...], Row] = {}
    for batch in batches:
        for row in batch:
            key = tuple(row[c] for c in group.unique_key)
            old = winners.get(key)
            ct = group.created_time
            if old is None or ct is None or row[ct] >= old[ct]:
                winners[key] = row
    return list(winners.values())


def reference_join(
    view: FeatureView,
    groups: Sequence[FeatureGroup],
    stored: dict[str, list[Row]],
    entity_rows: Sequence[Row],
    timestamp_column: str = TS,
) -> list[Row]:
    """The point-in-time join, one entity row and one stored row at a time."""
    by_name = {g.name: g for g in groups}
    out = []
    for entity in entity_rows:
        row = dict(entity)
        t = entity.get(timestamp_column)
        for src in view.sources:
            group = by_name[src.group]
            wanted = tuple(entity[src.join_key_map.get(k, k)] for k in group.primary_key)
            best: Row | None = None
            for cand in stored[group.name]:
                if tuple(cand[k] for k in group.primary_key) != wanted:
                    continue
                if group.event_time is None:  # static: keys alone
                    best = cand
                    continue
                e = cand[group.event_time]
                if e > t or (group.ttl is not None and e < t - group.ttl):
                    continue
                if best is None or e > best[group.event_time]:
                    best = cand
            for f in src.features:
                row[view.output_name(src, f)] = None if best is None else best[f]
        out.append(row)
    return out


def ingest_batches(
    store: FeatureStore, group: FeatureGroup, batches: Sequence[Sequence[Row]]
) -> None:
    for batch in batches:
        store.ingest(group.name, pa.Table.from_pylist(list(batch), schema=group.arrow_schema))


def assert_rows_equal(got: list[Row], expected: list[Row], context: str = "") -> None:
    assert len(got) == len(expected), f"{context}: {len(got)} rows, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, f"{context}: row {i} differs\n  got      {g}\n  expected {e}"


def by_unique_key(group: FeatureGroup, rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: tuple(r[c] for c in group.unique_key))


# -- randomized scenarios ----------------------------------------------------------------------
USER_IDS = [0, 1, 2]  # stored keys; entity rows also ask for 3, which has no data
MERCHANT_IDS = ["a", "b"]  # entity rows also ask for "zz"
KEYS = {"user_id": st.sampled_from(USER_IDS), "merchant_id": st.sampled_from(MERCHANT_IDS)}
VALUES = {
    pa.int64(): st.sampled_from([None, -2, 0, 1, 3]),
    pa.float64(): st.sampled_from([None, 0.0, -1.5, 2.25, 1e300]),
    pa.string(): st.sampled_from([None, "", "x", "yy", "ü"]),
}
# 249 us is one of the durations whose float seconds * 1e6 truncates to 248
UNITS = [1, 249, 1_001, 60_000_000, 86_400_000_000]


def make_groups(ttls: dict[str, timedelta | None]) -> list[FeatureGroup]:
    return [
        FeatureGroup(
            "user_stats",
            USER,
            [Field("clicks", "int64"), Field("spend", "float64")],
            created_time=CREATED,
            ttl=ttls["user_stats"],
        ),
        FeatureGroup("user_profile", USER, [Field("segment", "string")], ttl=ttls["user_profile"]),
        FeatureGroup(
            "merchant_risk",
            MERCHANT,
            [Field("risk", "float64")],
            created_time=CREATED,
            ttl=ttls["merchant_risk"],
        ),
        FeatureGroup(
            "pair_stats",
            [USER, MERCHANT],
            [Field("pair_count", "int64")],
            created_time=CREATED,
            ttl=ttls["pair_stats"],
        ),
        FeatureGroup("user_static", USER, [Field("country", "string")], event_time=None),
    ]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    unit = draw(st.sampled_from(UNITS))
    ttl = st.one_of(st.none(), st.integers(1, 4).map(lambda k: k * unit * US))
    groups = make_groups(
        {n: draw(ttl) for n in ("user_stats", "user_profile", "merchant_risk", "pair_stats")}
    )

    def row(group: FeatureGroup) -> st.SearchStrategy[Row]:
        fields: dict[str, st.SearchStrategy[Any]] = {k: KEYS[k] for k in group.primary_key}
        if group.event_time:  # a small grid, so event times collide often
            fields[group.event_time] = st.integers(0, 5).map(lambda k: at(k * unit))
        if group.created_time:  # few values, so created_time ties are frequent
            fields[group.created_time] = st.integers(0, 2).map(lambda k: at(k * 1_000_000))
        for f in group.feature_fields:
            fields[f.name] = VALUES[f.arrow_type]
        return st.fixed_dictionaries(fields)

    batches = {
        g.name: draw(st.lists(st.lists(row(g), min_size=1, max_size=6), max_size=3)) for g in groups
    }
    # entity times on the grid, one microsecond either side of it, and before any data
    t = st.builds(lambda k, d: at(k * unit + d), st.integers(-2, 7), st.sampled_from([0, 0, -1, 1]))
    free = st.fixed_dictionaries(
        {
            "user_id": st.sampled_from([*USER_IDS, 3]),
            "merchant_id": st.sampled_from([*MERCHANT_IDS, "zz"]),
            TS: t,
        }
    )
    # rows aimed at an ingested row: its keys, at its event time, at the TTL boundary, and
    # one microsecond past either end of the window
    anchors = [(g, r) for g in groups if g.event_time for batch in batches[g.name] for r in batch]
    entity_rows = []
    for i in range(draw(st.integers(1, 12))):
        entity = draw(free)
        if anchors and draw(st.booleans()):
            g, r = draw(st.sampled_from(anchors))
            entity.update({k: r[k] for k in g.primary_key})
            offsets = [0 * US, -US] + ([g.ttl, g.ttl, g.ttl + US] if g.ttl else [])
            entity[TS] = r[g.event_time] + draw(st.sampled_from(offsets))
        entity["tag"] = i  # a passthrough column
        entity_rows.append(entity)
    return {"unit": unit, "groups": groups, "batches": batches, "entities": entity_rows}


ENTITY_SCHEMA = pa.schema(
    [
        ("tag", pa.int64()),
        ("user_id", pa.int64()),
        ("merchant_id", pa.string()),
        (TS, pa.timestamp("us", tz="UTC")),
    ]
)


@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_pit_join_matches_reference(sc: dict[str, Any]) -> None:
    groups: list[FeatureGroup] = sc["groups"]
    stats = groups[0]
    # features in a different order than declared, and all groups
    view = FeatureView("fraud", [stats[["spend", "clicks"]], *groups[1:]])
    entity_rows = [{c: r[c] for c in ENTITY_SCHEMA.names} for r in sc["entities"]]
    with tempfile.TemporaryDirectory() as tmp:
        store = FeatureStore.init(Path(tmp) / "repo")
        store.apply([*groups, view])
        for g in groups:
            ingest_batches(store, g, sc["batches"][g.name])
        result = store.training_data(
            "fraud", pa.Table.from_pylist(entity_rows, schema=ENTITY_SCHEMA)
        )
        stored = {g.name: stored_rows(g, sc["batches"][g.name]) for g in groups}
        for g in groups:
            # storage de-duplication and the incrementally kept content hash
            assert_rows_equal(
                by_unique_key(g, store.read(g.name).to_pylist()),
                by_unique_key(g, stored[g.name]),
                f"stored rows of {g.name}",
            )
            expected_hash = content_hash(pa.Table.from_pylist(stored[g.name], g.arrow_schema))
            pin = result.record.pins[g.name]
            assert pin["content"] == str(expected_hash)
            assert pin["version"] == store.versions(g.name)[-1].version
        table = result.to_arrow()
        features = ["spend", "clicks", "segment", "risk", "pair_count", "country"]
        assert table.column_names == [*ENTITY_SCHEMA.names, *features]
        ttls = {g.name: g.ttl for g in groups}
        assert_rows_equal(
            table.to_pylist(),
            reference_join(view, groups, stored, entity_rows),
            f"unit={sc['unit']}us ttls={ttls}",
        )
        assert result.record.content == content_hash(table)
        # every join plan gives the same rows whatever `auto` picked
        entity_table = pa.Table.from_pylist(entity_rows, schema=ENTITY_SCHEMA)
        for strategy in ("merge", "asof", "range"):
            store.config.offline.pit_strategy = strategy
            other = store.training_data("fraud", entity_table).to_arrow()
            assert other.equals(table), f"strategy {strategy} differs"


# -- examples ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ttl", [US, 249 * US, 251 * US, timedelta(seconds=1), timedelta(days=2, microseconds=7)]
)
def test_ttl_window_is_closed_at_both_ends(store: FeatureStore, ttl: timedelta) -> None:
    g = FeatureGroup("g", USER, [Field("v", "int64")], ttl=ttl)
    store.apply([g, FeatureView("v", [g])])
    e = at(1_000_000)
    store.ingest("g", pa.table({"user_id": [1], TS: [e], "v": [7]}))
    times = [e + ttl, e, e - US, e + ttl + US]  # t - d == e and t == e qualify; the others not
    entities = pa.table({"user_id": [1] * 4, TS: pa.array(times, pa.timestamp("us", tz="UTC"))})
    got = store.training_data("v", entities).to_arrow().column("v").to_pylist()
    assert got == [7, 7, None, None]


def _clicks_setup(
    store: FeatureStore,
) -> tuple[FeatureGroup, FeatureGroup, FeatureView, list[list[Row]]]:
    clicks = FeatureGroup("clicks", USER, [Field("n", "int64")], ttl=timedelta(seconds=30))
    static = FeatureGroup("home", USER, [Field("city", "string")], event_time=None)
    view = FeatureView("v", [clicks, static])
    store.apply([clicks, static, view])
    s = 1_000_000
    batches = [
        [{"user_id": 1, TS: at(10 * s), "n": 1}],
        [{"user_id": 1, TS: at(20 * s), "n": 2}, {"user_id": 2, TS: at(5 * s), "n": 3}],
        # no created_time: the later write replaces the stored row
        [{"user_id": 1, TS: at(10 * s), "n": 4}, {"user_id": 2, TS: at(50 * s), "n": None}],
    ]
    ingest_batches(store, clicks, batches)
    ingest_batches(store, static, [[{"user_id": 1, "city": "Oslo"}]])
    return clicks, static, view, batches


ENTITY_ROWS: list[Row] = [
    {"user_id": u, TS: at(s * 1_000_000)}
    for u, s in [(1, 15), (1, 25), (2, 6), (2, 60), (3, 30), (1, 0), (2, 100), (1, 10)]
]


def test_pins_are_the_versions_read(store: FeatureStore) -> None:
    clicks, static, view, batches = _clicks_setup(store)
    td = store.training_data("v", pa.Table.from_pylist(ENTITY_ROWS))
    for g in (clicks, static):
        latest = store.versions(g.name)[-1]
        pin = td.record.pins[g.name]
        assert pin["version"] == latest.version
        assert pin["major"] == 1
        assert pin["identity"] == f"feature_group/{g.name}@v1#{latest.version}"
        assert pin["content"] == str(latest.content)
        assert pin["content"] == str(content_hash(store.read(g.name, version=pin["version"])))
    assert td.record.pins["clicks"]["version"] == len(batches)
    stored = {"clicks": stored_rows(clicks, batches), "home": [{"user_id": 1, "city": "Oslo"}]}
    assert_rows_equal(
        td.to_arrow().to_pylist(), reference_join(view, [clicks, static], stored, ENTITY_ROWS)
    )


def test_versions_time_travel(store: FeatureStore) -> None:
    clicks, static, view, batches = _clicks_setup(store)
    home = [{"user_id": 1, "city": "Oslo"}]
    entities = pa.Table.from_pylist(ENTITY_ROWS)
    for n in range(len(batches) + 1):  # version 0 is the empty table made by apply
        td = store.training_data("v", entities, versions={"clicks": n})
        assert td.record.pins["clicks"]["version"] == n
        assert td.record.pins["home"]["version"] == 1  # not named: the latest
        assert td.record.pins["clicks"]["content"] == str(store.versions("clicks")[n].content)
        stored = {"clicks": stored_rows(clicks, batches[:n]), "home": home}
        assert_rows_equal(
            td.to_arrow().to_pylist(),
            reference_join(view, [clicks, static], stored, ENTITY_ROWS),
            f"versions={{'clicks': {n}}}",
        )


def test_result_schema_is_entity_columns_then_declared_feature_types(
    store: FeatureStore,
) -> None:
    features = [
        Field("i32", "int32"),
        Field("u8", "uint8"),
        Field("f32", "float32"),
        Field("flag", "bool"),
        Field("name", "string"),
        Field("raw", "binary"),
        Field("day", "date"),
        Field("seen", "timestamp"),
        Field("vec", "list<float32>"),
    ]
    g = FeatureGroup("wide", USER, features, ttl=timedelta(days=1))
    store.apply([g, FeatureView("v", [g])])
    store.ingest(
        "wide",
        pa.table(
            {
                "user_id": [1],
                TS: [at(0)],
                "i32": pa.array([1], pa.int32()),
                "u8": pa.array([2], pa.uint8()),
                "f32": pa.array([0.5], pa.float32()),
                "flag": [True],
                "name": ["n"],
                "raw": [b"\x00"],
                "day": pa.array([BASE.date()], pa.date32()),
                "seen": [BASE],
                "vec": pa.array([[1.0, None]], pa.list_(pa.float32())),
            }
        ),
    )
    # entity columns in their own order, a narrower key type, an extra column
    entities = pa.table(
        {
            TS: [at(5), at(-5)],
            "score": [0.1, 0.2],
            "user_id": pa.array([1, 1], pa.int32()),
        }
    )
    table = store.training_data("v", entities).to_arrow()
    expected = pa.schema(
        [
            pa.field(TS, pa.timestamp("us", tz="UTC")),
            pa.field("score", pa.float64()),
            pa.field("user_id", pa.int64()),
        ]
        + [pa.field(f.name, f.arrow_type) for f in features]
    )
    assert table.schema.remove_metadata().equals(expected), table.schema
    first, second = table.to_pylist()
    assert first["vec"] == [1.0, None] and first["day"] == BASE.date() and first["raw"] == b"\x00"
    assert all(second[f.name] is None for f in features)  # before any data


def test_full_feature_names_prefix_group(store: FeatureStore) -> None:
    a = FeatureGroup("left", USER, [Field("score", "float64")])
    b = FeatureGroup("right", USER, [Field("score", "int64")], event_time=None)
    store.apply([a, b, FeatureView("v", [a, b], full_feature_names=True)])
    store.ingest("left", pa.table({"user_id": [1], TS: [at(0)], "score": [0.5]}))
    store.ingest("right", pa.table({"user_id": [1], "score": [9]}))
    table = store.training_data("v", pa.table({"user_id": [1, 2], TS: [at(1), at(1)]})).to_arrow()
    assert table.column_names == ["user_id", TS, "left__score", "right__score"]
    assert table.schema.field("right__score").type == pa.int64()
    assert table.to_pylist() == [
        {"user_id": 1, TS: at(1), "left__score": 0.5, "right__score": 9},
        {"user_id": 2, TS: at(1), "left__score": None, "right__score": None},
    ]


def _two_key_setup(store: FeatureStore) -> list[Row]:
    u = FeatureGroup("u", USER, [Field("x", "float64")], ttl=timedelta(hours=1))
    m = FeatureGroup("m", MERCHANT, [Field("y", "string")])
    store.apply([u, m, FeatureView("v", [u, m])])
    store.ingest(
        "u", pa.table({"user_id": [1, 1, 2], TS: [at(0), at(10), at(5)], "x": [1.0, 2.0, None]})
    )
    store.ingest("m", pa.table({"merchant_id": ["a", "b"], TS: [at(3), at(30)], "y": ["p", "q"]}))
    return [
        {"user_id": u_, "merchant_id": m_, TS: at(t)}
        for u_, m_, t in [(1, "a", 10), (2, "b", 29), (1, "b", 30), (3, "zz", 100), (2, "a", 2)]
    ]


def test_pandas_polars_and_arrow_entity_frames_agree(store: FeatureStore) -> None:
    rows = _two_key_setup(store)
    arrow = pa.Table.from_pylist(rows)
    frames = {
        "arrow": arrow,
        "pandas": pd.DataFrame(
            {
                "user_id": [r["user_id"] for r in rows],
                "merchant_id": [r["merchant_id"] for r in rows],
                TS: pd.to_datetime([r[TS] for r in rows], utc=True),
            }
        ),
        "polars": pl.from_arrow(arrow),
        # the same instants labelled in another zone
        "pandas_oslo": pd.DataFrame(
            {
                "user_id": [r["user_id"] for r in rows],
                "merchant_id": [r["merchant_id"] for r in rows],
                TS: pd.to_datetime([r[TS] for r in rows], utc=True).tz_convert("Europe/Oslo"),
            }
        ),
    }
    results = {name: store.training_data("v", df).to_arrow() for name, df in frames.items()}
    expected = results.pop("arrow")
    assert expected.column("x").to_pylist() == [2.0, None, 2.0, None, None]
    assert expected.column("y").to_pylist() == ["p", None, "q", None, None]
    for name, table in results.items():
        assert table.to_pylist() == expected.to_pylist(), name
        assert table.schema.field("merchant_id").type == pa.string(), name
        assert table.select(["x", "y"]).schema == expected.select(["x", "y"]).schema, name


def test_entity_frame_with_an_all_null_column(store: FeatureStore) -> None:
    # pandas gives an all-None column Arrow's null type; it passes through untouched
    rows = _two_key_setup(store)
    frame = pd.DataFrame(
        {
            "user_id": [r["user_id"] for r in rows],
            "merchant_id": [r["merchant_id"] for r in rows],
            TS: pd.to_datetime([r[TS] for r in rows], utc=True),
            "note": [None] * len(rows),
        }
    )
    td = store.training_data("v", frame)
    table = td.to_arrow()
    assert table.column("note").null_count == len(rows)
    assert table.column("x").to_pylist() == [2.0, None, 2.0, None, None]
    assert td.record.content == content_hash(table)


def test_output_streams_to_parquet(store: FeatureStore, tmp_path: Path) -> None:
    rows = _two_key_setup(store)
    in_memory = store.training_data("v", pa.Table.from_pylist(rows))
    out = tmp_path / "exports" / "train.parquet"
    written = store.training_data("v", pa.Table.from_pylist(rows), output=out)
    assert out.exists()
    assert written.record.output_path == str(out.resolve())
    assert in_memory.record.output_path is None
    assert written.to_arrow().equals(in_memory.to_arrow())
    assert written.record.content == in_memory.record.content
    assert len(written) == len(rows)


def test_record_content_hash_is_hash_of_result(store: FeatureStore) -> None:
    rows = _two_key_setup(store)
    td = store.training_data("v", pa.Table.from_pylist(rows))
    table = td.to_arrow()
    assert td.record.content == content_hash(table)
    assert td.record.rows == table.num_rows == len(rows)
    assert store.show(str(td.identity))["content_hash"] == str(content_hash(table))


# -- the `auto` plan's estimate ----------------------------------------------------------------
def test_auto_reads_the_stored_time_span_from_statistics(tmp_path: Path) -> None:
    # `auto` takes the span of event times from the row groups' statistics when every row
    # group has them, else from a scan; both give the same span and the same plans
    from featureledger.offline import PitSource
    from featureledger.offline.duckdb import DuckDBEngine

    schema = pa.schema([("user_id", pa.int64()), (TS, pa.timestamp("us", tz="UTC"))])
    times = [at(k * 3_600_000_000 + 7) for k in (5, 0, 40, 3, 41, 2)]
    rows = [{"user_id": i % 2, TS: t} for i, t in enumerate(times)]
    table = pa.Table.from_pylist(rows, schema=schema)
    paths = [str(tmp_path / f"{name}.parquet") for name in ("a", "b", "c")]
    pq.write_table(table.slice(0, 3), paths[0], row_group_size=2)
    pq.write_table(table.slice(3), paths[1])
    pq.write_table(table.slice(3), paths[2], write_statistics=False)
    engine = DuckDBEngine()
    engine.RANGE_JOIN_MAX_MATCHES = 2  # the files hold 3 rows per key
    con = engine._cursor()
    span = (max(times) - min(times)) // US
    assert engine._stored_span(con, paths[:2], TS) == span
    assert engine._stored_span(con, [paths[0], paths[2]], TS) is None
    for files in (paths[:2], [paths[0], paths[2]]):
        scan = engine.scan(con, "stored", files, schema)
        for ttl_us, range_plan in ((span, False), (span // 1000, True)):
            src = PitSource(files, schema, ["user_id"], ["user_id"], TS, ttl_us, [])
            assert engine._use_range(con, scan, src, "auto") is range_plan
