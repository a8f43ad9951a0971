"""SCD history: `store.history` / `featureledger history` as validity intervals per key,
checked against a plain reference and against the point-in-time join."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.cli.main import app
from featureledger.errors import DataError

BASE = datetime(2024, 3, 1, tzinfo=UTC)
TS = "event_timestamp"
CREATED = "created"
USER = Entity("user", join_keys=["user_id"])
MERCHANT = Entity("merchant", join_keys=[Field("merchant_id", "string")])

Row = dict[str, Any]


def pair_group(ttl: timedelta | None = None, *, online: bool = False) -> FeatureGroup:
    return FeatureGroup(
        "pair_stats",
        [USER, MERCHANT],
        [Field("amount", "int64")],
        created_time=CREATED,
        ttl=ttl,
        online=online,
    )


def at(seconds: int) -> datetime:
    return BASE + timedelta(seconds=seconds)


# -- the reference -----------------------------------------------------------------------------
def reference_history(rows: list[Row]) -> list[Row]:
    """Per key, the stored rows in event-time order (created time breaks ties), each valid
    from its event time until the next one of its key; the latest is open (None)."""
    by_key: dict[tuple[Any, ...], list[Row]] = {}
    for r in rows:
        by_key.setdefault((r["user_id"], r["merchant_id"]), []).append(r)
    out = []
    for key in sorted(by_key):
        ordered = sorted(by_key[key], key=lambda r: (r[TS], r[CREATED]))
        for i, r in enumerate(ordered):
            nxt = ordered[i + 1][TS] if i + 1 < len(ordered) else None
            out.append(
                {
                    "user_id": key[0],
                    "merchant_id": key[1],
                    "valid_from": r[TS],
                    "valid_to": nxt,
                    "is_current": nxt is None,
                    CREATED: r[CREATED],
                    "amount": r["amount"],
                }
            )
    return out


def stored(batches: list[list[Row]]) -> list[Row]:
    """Storage keeps one row per (key, event time): the greatest created time wins, ties go
    to the later write (as tests/test_pit.py's reference)."""
    winners: dict[tuple[Any, ...], Row] = {}
    for batch in batches:
        for r in batch:
            k = (r["user_id"], r["merchant_id"], r[TS])
            if k not in winners or r[CREATED] >= winners[k][CREATED]:
                winners[k] = r
    return list(winners.values())


ROW = st.fixed_dictionaries(
    {
        "user_id": st.sampled_from([1, 2]),
        "merchant_id": st.sampled_from(["a", "b"]),
        TS: st.integers(0, 6).map(lambda k: at(k * 10)),
        CREATED: st.integers(0, 2).map(lambda k: at(1000 + k)),
        "amount": st.integers(-5, 5),
    }
)


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(st.lists(ROW, min_size=1, max_size=8), min_size=1, max_size=3),
    ttl=st.one_of(st.none(), st.sampled_from([5, 10, 25]).map(lambda s: timedelta(seconds=s))),
    probes=st.lists(
        st.tuples(st.sampled_from([1, 2]), st.sampled_from(["a", "b"]), st.integers(-5, 75)),
        min_size=1,
        max_size=12,
    ),
)
def test_history_matches_reference_and_the_pit_join(
    batches: list[list[Row]], ttl: timedelta | None, probes: list[tuple[int, str, int]]
) -> None:
    group = pair_group(ttl)
    view = FeatureView("pairs", [group[["amount"]]])
    with tempfile.TemporaryDirectory() as tmp, FeatureStore.init(Path(tmp) / "repo") as store:
        _check_history(store, group, view, batches, ttl, probes)


def _check_history(
    store: FeatureStore,
    group: FeatureGroup,
    view: FeatureView,
    batches: list[list[Row]],
    ttl: timedelta | None,
    probes: list[tuple[int, str, int]],
) -> None:
    store.apply([USER, MERCHANT, group, view])
    for batch in batches:
        store.ingest(group.name, pa.Table.from_pylist(batch, schema=group.arrow_schema))
    hist = store.history(group.name)
    expected = reference_history(stored(batches))
    assert hist.select(list(expected[0])).to_pylist() == expected

    # one key alone gives that key's part of the same history
    one = store.history(group.name, {"user_id": 1, "merchant_id": "a"}).to_pylist()
    assert [r["valid_from"] for r in one] == [
        r["valid_from"] for r in expected if (r["user_id"], r["merchant_id"]) == (1, "a")
    ]

    # a PIT lookup at t returns the row whose interval holds t, within the TTL
    entities = pa.table(
        {
            "user_id": [p[0] for p in probes],
            "merchant_id": [p[1] for p in probes],
            TS: pa.array([at(p[2]) for p in probes], pa.timestamp("us", tz="UTC")),
        }
    )
    joined = store.training_data("pairs", entities).to_arrow().to_pylist()
    for (user, merchant, s), got in zip(probes, joined, strict=True):
        t = at(s)
        holding = [
            r
            for r in expected
            if (r["user_id"], r["merchant_id"]) == (user, merchant)
            and r["valid_from"] <= t
            and (r["valid_to"] is None or t < r["valid_to"])
        ]
        assert len(holding) <= 1
        want = None
        if holding and (ttl is None or t - holding[0]["valid_from"] <= ttl):
            want = holding[0]["amount"]
        assert got["amount"] == want, (user, merchant, s)


def test_history_of_an_older_data_version(store: FeatureStore) -> None:
    group = pair_group()
    store.apply([USER, MERCHANT, group])
    first = [{"user_id": 1, "merchant_id": "a", TS: at(0), CREATED: at(100), "amount": 1}]
    v1 = store.ingest(group.name, pa.Table.from_pylist(first, schema=group.arrow_schema))
    later = [{"user_id": 1, "merchant_id": "a", TS: at(10), CREATED: at(100), "amount": 2}]
    store.ingest(group.name, pa.Table.from_pylist(later, schema=group.arrow_schema))
    key = {"user_id": 1, "merchant_id": "a"}
    now = store.history(group.name, key).to_pylist()
    assert [(r["valid_from"], r["valid_to"], r["amount"]) for r in now] == [
        (at(0), at(10), 1),
        (at(10), None, 2),
    ]
    then = store.history(group.name, key, version=v1.version).to_pylist()
    assert [(r["valid_from"], r["valid_to"], r["is_current"]) for r in then] == [
        (at(0), None, True)
    ]
    assert store.history(group.name, {"user_id": 2, "merchant_id": "a"}).num_rows == 0


def test_composite_key_must_be_given_whole(store: FeatureStore) -> None:
    group = pair_group()
    store.apply([USER, MERCHANT, group])
    with pytest.raises(DataError, match="composite key"):
        store.history(group.name, 1)
    with pytest.raises(DataError, match="missing"):
        store.history(group.name, {"user_id": 1})
    with pytest.raises(DataError, match="is not a int64"):
        store.history(group.name, {"user_id": "one", "merchant_id": "a"})


def test_static_group_rows_are_valid_always_and_scd_types_are_shown(store: FeatureStore) -> None:
    static = FeatureGroup("country", USER, [Field("code", "string")], event_time=None)
    offline = pair_group()
    online = FeatureGroup("user_live", USER, [Field("n", "int64")], online=True)
    store.apply([USER, MERCHANT, static, offline, online])
    store.ingest("country", pa.table({"user_id": [1, 2], "code": ["fr", "de"]}))
    rows = store.history("country", 2).to_pylist()
    assert rows == [
        {"user_id": 2, "valid_from": None, "valid_to": None, "is_current": True, "code": "de"}
    ]
    types = {
        g: store.show(f"feature_group/{g}")["scd_type"]["type"]
        for g in ("country", "pair_stats", "user_live")
    }
    assert types == {"country": 0, "pair_stats": 2, "user_live": 4}


def test_history_command(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    store = FeatureStore.init(repo)
    group = pair_group()
    store.apply([USER, MERCHANT, group])
    rows = [
        {"user_id": 7, "merchant_id": "m", TS: at(0), CREATED: at(100), "amount": 1},
        {"user_id": 7, "merchant_id": "m", TS: at(30), CREATED: at(100), "amount": 4},
        {"user_id": 8, "merchant_id": "m", TS: at(5), CREATED: at(100), "amount": 9},
    ]
    store.ingest(group.name, pa.Table.from_pylist(rows, schema=group.arrow_schema))
    store.close()
    runner = CliRunner()
    result = runner.invoke(
        app, ["history", "pair_stats", "user_id=7,merchant_id=m", "--json", "--repo", str(repo)]
    )
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert [(r["valid_from"], r["valid_to"], r["amount"]) for r in got] == [
        (at(0).isoformat(), at(30).isoformat(), 1),
        (at(30).isoformat(), None, 4),
    ]
    table = runner.invoke(
        app, ["history", "pair_stats", "user_id=7,merchant_id=m", "--repo", str(repo)]
    )
    assert table.exit_code == 0 and "valid_from" in table.output
    bad = runner.invoke(app, ["history", "pair_stats", "7", "--repo", str(repo)])
    assert bad.exit_code == 1 and "composite key" in bad.output
