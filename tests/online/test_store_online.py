"""Materialization and online reads through the store, on SQLite and on a real Redis:
online values equal the offline point-in-time values at the same time, TTL included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.errors import DataError, DefinitionError, NotFoundError

T0 = datetime(2025, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup(
    "stats",
    USER,
    features=[Field("spend", "float64"), Field("n", "int64")],
    ttl=timedelta(hours=5),
    online=True,
)
PROFILE = FeatureGroup(
    "profile", USER, event_time=None, features=[Field("city", "string")], online=True
)
OFFLINE = FeatureGroup("offline_only", USER, features=[Field("z", "float64")])
VIEW = FeatureView("v", [STATS, PROFILE])


@pytest.fixture
def store(repo_store: FeatureStore) -> FeatureStore:
    s = repo_store
    s.apply([USER, STATS, PROFILE, OFFLINE, VIEW, FeatureView("w", [OFFLINE])])
    s.ingest(
        "stats",
        {
            "user_id": [1, 1, 2, 3],
            "event_timestamp": [T0, T0 + H, T0, T0 - 9 * H],
            "spend": [1.0, 2.0, 5.0, 7.0],
            "n": [1, 2, 5, 7],
        },
    )
    s.ingest("profile", {"user_id": [1, 2], "city": ["Oslo", "Lyon"]})
    return s


def test_online_equals_offline_at_the_same_time(store: FeatureStore) -> None:
    done = store.materialize()
    assert {m.group: m.mode for m in done} == {"stats": "full", "profile": "full"}
    now = T0 + 2 * H
    rows = [{"user_id": u} for u in (2, 1, 3, 9, 1)]
    online = store.get_online_features("v", rows, now=now).to_arrow()
    offline = store.training_data(
        "v", pa.table({"user_id": [2, 1, 3, 9, 1], "event_timestamp": [now] * 5})
    ).to_arrow()
    for column in ("spend", "n", "city"):
        assert online.column(column).to_pylist() == offline.column(column).to_pylist(), column
    assert online.column("spend").to_pylist() == [5.0, 2.0, None, None, 2.0]  # 3 expired
    assert online.column("user_id").to_pylist() == [2, 1, 3, 9, 1]


def test_ttl_online_is_closed_at_the_boundary(store: FeatureStore) -> None:
    store.materialize(["v"])
    at_edge = store.get_online_features("v", {"user_id": [2]}, now=T0 + 5 * H)
    past = store.get_online_features(
        "v", {"user_id": [2]}, now=T0 + 5 * H + timedelta(microseconds=1)
    )
    assert at_edge.to_dict()["spend"] == [5.0]
    assert past.to_dict()["spend"] == [None]


def test_incremental_materialization_reads_only_new_commits(store: FeatureStore) -> None:
    store.materialize()
    assert store.materialize()[0].mode == "unchanged"
    store.ingest(
        "stats", {"user_id": [2], "event_timestamp": [T0 + 3 * H], "spend": [9.0], "n": [9]}
    )
    done = {m.group: m for m in store.materialize(["stats"])}
    assert done["stats"].mode == "incremental" and done["stats"].rows == 1
    got = store.get_online_features("v", {"user_id": [2, 1]}, now=T0 + 3 * H).to_dict()
    assert got["spend"] == [9.0, 2.0]


def test_rollback_rebuilds_the_online_copy(store: FeatureStore) -> None:
    store.materialize()
    store.ingest(
        "stats", {"user_id": [2], "event_timestamp": [T0 + 3 * H], "spend": [9.0], "n": [9]}
    )
    store.materialize()
    store.rollback("stats", to=1)
    done = {m.group: m for m in store.materialize()}
    assert done["stats"].mode == "full"
    got = store.get_online_features("v", {"user_id": [2]}, now=T0 + 3 * H).to_dict()
    assert got["spend"] == [5.0]  # the rolled-back value is gone online too


def test_clear_errors_for_offline_and_unmaterialized_groups(store: FeatureStore) -> None:
    with pytest.raises(NotFoundError, match="materialize"):
        store.get_online_features("v", {"user_id": [1]})
    with pytest.raises(DefinitionError, match="not online"):
        store.materialize(["offline_only"])
    with pytest.raises(DefinitionError, match="not online"):
        store.get_online_features("w", {"user_id": [1]})


def test_push_validates_and_lands_where_asked(store: FeatureStore) -> None:
    from featureledger.contracts import Contract, Range
    from featureledger.errors import ContractViolation

    store.materialize()
    n = store.push("stats", {"user_id": [4], "event_timestamp": [T0 + H], "spend": [3.0], "n": [3]})
    assert n == 1
    got = store.get_online_features("v", {"user_id": [4]}, now=T0 + H).to_dict()
    assert got["spend"] == [3.0]
    assert store.read("stats").num_rows == 4  # online only: offline unchanged

    store.push(
        "stats", {"user_id": [5], "event_timestamp": [T0 + H], "spend": [4.0], "n": [4]}, to="both"
    )
    assert store.read("stats").num_rows == 5
    assert store.get_online_features("v", {"user_id": [5]}, now=T0 + H).to_dict()["n"] == [4]

    checked = FeatureGroup(
        "stats",
        USER,
        features=STATS.feature_fields,
        ttl=STATS.ttl,
        online=True,
        contract=Contract("stats", rules=[Range("spend", min=0.0)]),
    )
    store.apply([checked])
    with pytest.raises(ContractViolation):
        store.push("stats", {"user_id": [6], "event_timestamp": [T0], "spend": [-1.0], "n": [1]})
    assert store.get_online_features("v", {"user_id": [6]}, now=T0).to_dict()["spend"] == [None]


def test_push_to_both_under_quarantine_sends_only_valid_rows_online(store: FeatureStore) -> None:
    from featureledger.contracts import Contract, Range

    guarded = FeatureGroup(
        "stats",
        USER,
        features=STATS.feature_fields,
        ttl=STATS.ttl,
        online=True,
        policy="quarantine",
        contract=Contract("stats", rules=[Range("spend", min=0.0)]),
    )
    store.apply([guarded])
    store.materialize()
    accepted = store.push(
        "stats",
        {"user_id": [7, 8], "event_timestamp": [T0, T0], "spend": [1.0, -1.0], "n": [1, 1]},
        to="both",
    )
    assert accepted == 1
    got = store.get_online_features("v", {"user_id": [7, 8]}, now=T0).to_dict()
    assert got["spend"] == [1.0, None]
    assert store.quarantined("stats").column("user_id").to_pylist() == [8]


def test_feature_logging_and_skew_find_a_stale_online_value(store: FeatureStore) -> None:
    store.materialize()
    now = T0 + 2 * H
    store.get_online_features("v", {"user_id": [1, 2, 1]}, now=now, log=True)
    logged = store.feature_log("v")
    assert logged.num_rows == 3
    assert set(logged.column("user_id").to_pylist()) == {1, 2}
    report = store.skew("v")
    assert report.features["spend"].match_rate == 1.0  # served = offline at request time

    # a correction lands offline but is not materialized: online serves a stale value
    store.ingest("stats", {"user_id": [2], "event_timestamp": [T0 + H], "spend": [6.0], "n": [6]})
    store.get_online_features("v", {"user_id": [2]}, now=T0 + 3 * H, log=True)
    report = store.skew("v", start=T0 + 3 * H)
    assert report.features["spend"].match_rate == 0.0
    assert report.features["spend"].cause == "stale online value"


def test_skew_catches_a_mismatched_transform(store: FeatureStore) -> None:
    store.materialize()
    now = T0 + 2 * H
    served = store.get_online_features("v", {"user_id": [1, 2]}, now=now).to_arrow()
    # a serving path that (wrongly) reports spend in cents: log what it served
    cents = served.set_column(
        served.schema.get_field_index("spend"),
        "spend",
        pa.compute.multiply(served.column("spend"), 100.0),
    )
    from featureledger.offline.logs import REQUEST_ID, REQUEST_TIME, VIEW_VERSION

    n = cents.num_rows
    cents = (
        cents.append_column(REQUEST_ID, pa.array(["r1"] * n))
        .append_column(REQUEST_TIME, pa.array([now] * n, pa.timestamp("us", tz="UTC")))
        .append_column(VIEW_VERSION, pa.array(["feature_view/v@v1"] * n))
    )
    store._svc.logs.writer(store.get_feature_view("v")).log(cents)
    report = store.skew("v")
    assert report.features["spend"].match_rate == 0.0
    assert report.features["spend"].cause == "transform mismatch"
    assert report.features["n"].match_rate == 1.0


@settings(
    max_examples=int(__import__("os").environ.get("FL_HYP_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    user=st.integers(-2, 4) | st.just(2**62),
    extra=st.none() | st.floats(allow_nan=False) | st.text(max_size=3) | st.booleans(),
    hours=st.integers(-2, 12),
    as_columns=st.booleans(),
)
def test_one_entity_fast_path_equals_the_arrow_path(
    store: FeatureStore, user: int, extra: object, hours: int, as_columns: bool
) -> None:
    """A single entity row is read without Arrow; the result (values, types, TTL, missing
    keys, pass-through columns) equals the general path's for the same request."""
    store.materialize()
    now = T0 + hours * H
    row = {"user_id": user, "note": extra}
    given_rows: object = {k: [v] for k, v in row.items()} if as_columns else [row]
    fast = store.get_online_features("v", given_rows, now=now)
    arrow = store.get_online_features("v", pa.Table.from_pylist([row]), now=now)
    assert fast._columns is not None, "the one-entity request did not take the fast path"
    assert fast.to_arrow().equals(arrow.to_arrow())
    assert fast.to_arrow().schema == arrow.to_arrow().schema
    assert fast.to_dict() == arrow.to_dict()
    assert fast.to_pylist() == arrow.to_pylist()


def test_one_entity_requests_the_fast_path_cannot_take_get_the_same_errors(
    store: FeatureStore,
) -> None:
    store.materialize()
    now = T0 + 2 * H
    with pytest.raises(DataError, match="join key 'user_id'"):
        store.get_online_features("v", [{"id": 1}], now=now)
    with pytest.raises(DataError, match="user_id"):
        store.get_online_features("v", [{"user_id": "one"}], now=now)
    with pytest.raises(DataError, match="expected int64, got float64"):
        store.get_online_features("v", [{"user_id": 1.0}], now=now)
    with pytest.raises(DataError, match="expected int64"):
        store.get_online_features("v", [{"user_id": True}], now=now)


def test_a_window_materializes_the_latest_row_within_it(store: FeatureStore) -> None:
    """--end alone with a rebuild gives the online store as of that time (= offline at it);
    --start drops entities with no event since; a window never counts as materialized."""
    store.materialize(["profile"])
    seen: list[tuple[str, int, int]] = []
    done = store.materialize(
        ["stats"], incremental=False, end=T0, progress=lambda *a: seen.append(a)
    )
    assert [(m.mode, m.rows) for m in done] == [("window-rebuild", 3)]
    assert seen[-1] == ("stats", 3, 4)  # rows done, the version's rows as the bound
    at_t0 = store.get_online_features("v", {"user_id": [1, 2, 3]}, now=T0).to_dict()
    offline = store.training_data(
        "v", pa.table({"user_id": [1, 2, 3], "event_timestamp": [T0] * 3})
    ).to_arrow()
    assert at_t0["spend"] == offline.column("spend").to_pylist() == [1.0, 5.0, None]  # TTL

    def stored(user: int) -> object:  # what the online copy holds, TTL aside
        got = store.online_store().read(
            "stats@v1", pa.table({"user_id": [user]}), ["spend"], now=T0, ttl=None
        )
        return got.column("spend")[0].as_py()

    assert stored(3) == 7.0
    store.materialize(["stats"], incremental=False, start=T0)  # 3's only row is older
    assert stored(3) is None and stored(1) == 2.0

    # additive window runs never replace a row with an older one
    store.materialize(["stats"], end=T0)
    assert store.get_online_features("v", {"user_id": [1]}, now=T0 + H).to_dict()["spend"] == [2.0]
    # nothing was recorded as materialized: the next plain run is a full one
    assert [m.mode for m in store.materialize(["stats"])] == ["full"]
    with pytest.raises(DataError, match=r"start .* is after end"):
        store.materialize(["stats"], start=T0 + H, end=T0)
    with pytest.raises(DataError, match="no event time"):
        store.materialize(["profile"], end=T0)
    with pytest.raises(DataError, match="time-zone aware"):
        store.materialize(["stats"], end=T0.replace(tzinfo=None))


@pytest.mark.parametrize("rows_per_key", [0.0, 1e9])  # always keep the newest / always stream
def test_materialization_keeps_the_newest_row_whichever_way_it_streams(
    repo_store: FeatureStore, monkeypatch: pytest.MonkeyPatch, rows_per_key: float
) -> None:
    """Materialization either keeps the newest row per key in DuckDB or streams every row
    and lets the store's latest-wins rule decide; both equal a plain reference."""
    import random

    from featureledger.offline.duckdb import DuckDBEngine

    monkeypatch.setattr(DuckDBEngine, "STREAM_ALL_MAX_ROWS_PER_KEY", rows_per_key)
    s = repo_store
    g = FeatureGroup("hist", USER, features=[Field("x", "int64")], online=True)
    s.apply([USER, g, FeatureView("h", [g])])
    rng = random.Random(7)
    newest: dict[int, tuple[datetime, int]] = {}
    for batch in range(3):
        rows = {
            (user, hour): rng.randrange(1000)
            for user in range(40)
            for hour in rng.sample(range(24), rng.randint(0, 4))
        }
        for (user, hour), x in rows.items():
            t = T0 + hour * H
            if user not in newest or t >= newest[user][0]:
                newest[user] = (t, x)
        s.ingest(
            "hist",
            {
                "user_id": [u for u, _ in rows],
                "event_timestamp": [T0 + h * H for _, h in rows],
                "x": list(rows.values()),
            },
            mode="upsert",
        )
        if batch == 1:
            s.materialize(["hist"])  # the last batch is read incrementally
    s.materialize(["hist"])
    got = s.get_online_features("h", {"user_id": list(range(41))}, now=T0 + 30 * H).to_dict()
    assert got["x"] == [newest[u][1] if u in newest else None for u in range(41)]
    assert [m.mode for m in s.materialize(["hist"])] == ["unchanged"]
    assert [m.mode for m in s.materialize(["hist"], incremental=False)] == ["full"]  # asked
