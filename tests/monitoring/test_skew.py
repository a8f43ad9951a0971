"""Training-serving skew: a deliberately mismatched transform, a stale online value and
missing-value handling are each caught and named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from featureledger.monitoring import skew

rng = np.random.default_rng(5)
N = 300
T0 = datetime(2024, 3, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


@pytest.fixture
def offline() -> pa.Table:
    """Point-in-time values for each logged (user, request time)."""
    return pa.table(
        {
            "user_id": np.arange(N) % 30,
            "request_time": pa.array([T0 + timedelta(minutes=i) for i in range(N)], TS),
            "spend_7d": rng.gamma(2.0, 40.0, N),
            "txn_count": rng.integers(0, 20, N).astype(np.int64),
            "segment": rng.choice(["gold", "silver"], N),
            "event_time": pa.array([T0 + timedelta(minutes=i - 5) for i in range(N)], TS),
        }
    )


def served(offline: pa.Table, **replace) -> pa.Table:
    out = offline
    for name, values in replace.items():
        idx = out.column_names.index(name)
        out = out.set_column(idx, name, pa.array(values, out.schema.field(name).type))
    return out


KEYS = ["user_id"]
FEATURES = ["spend_7d", "txn_count", "segment"]


def test_identical_values_match_everywhere(offline):
    report = skew(offline, offline, KEYS, FEATURES, request_time="request_time")
    assert report.skewed == [] and report.status == "ok"
    for f in report.features.values():
        assert (f.match_rate, f.cause, f.compared) == (1.0, None, N)
    assert report.features["spend_7d"].mean_abs_diff == 0.0
    assert report.distribution is not None and report.distribution.status == "ok"
    json.dumps(report.to_dict())


def test_float_noise_within_the_tolerance_matches(offline):
    noisy = offline.column("spend_7d").to_numpy() * (1 + 1e-13)
    report = skew(
        offline, served(offline, spend_7d=noisy), KEYS, FEATURES, request_time="request_time"
    )
    assert report.features["spend_7d"].match_rate == 1.0


def test_a_mismatched_transform_is_caught(offline):
    # online computes spend in cents, offline in euros
    cents = offline.column("spend_7d").to_numpy() * 100
    report = skew(
        offline, served(offline, spend_7d=cents), KEYS, FEATURES, request_time="request_time"
    )
    f = report.features["spend_7d"]
    assert f.match_rate == 0.0 and f.status == "alert"
    assert f.cause == "transform mismatch" and "100 × offline" in f.detail
    assert f.mean_abs_diff == pytest.approx(np.mean(np.abs(cents - cents / 100)))
    assert report.skewed == ["spend_7d"]
    assert report.distribution.features["spend_7d"].status == "alert"  # served vs training
    assert f.examples and {"user_id", "request_time", "online", "offline"} <= set(f.examples[0])


def test_a_constant_offset_and_a_linear_transform(offline):
    x = offline.column("spend_7d").to_numpy()
    off = skew(
        offline, served(offline, spend_7d=x + 3), KEYS, ["spend_7d"], request_time="request_time"
    )
    assert off.features["spend_7d"].cause == "transform mismatch"
    assert "offline + 3" in off.features["spend_7d"].detail
    lin = skew(
        offline,
        served(offline, spend_7d=1.8 * x + 32),
        KEYS,
        ["spend_7d"],
        request_time="request_time",
    )
    assert "1.8 × offline + 32" in lin.features["spend_7d"].detail


def test_a_stale_online_value_is_caught_by_event_time(offline):
    # 40 requests were served the previous event's value (the online store lagged)
    stale = np.arange(40)
    spend = offline.column("spend_7d").to_numpy().copy()
    spend[stale] = spend[stale] - 7.5 * (stale + 1)
    event = offline.column("event_time").to_pylist()
    for i in stale:
        event[i] = event[i] - timedelta(hours=1)
    online = served(offline, spend_7d=spend, event_time=event)
    report = skew(
        offline, online, KEYS, FEATURES, request_time="request_time", event_time="event_time"
    )
    f = report.features["spend_7d"]
    assert f.stale == 40 and f.cause == "stale online value"
    assert f.match_rate == pytest.approx((N - 40) / N) and f.status == "alert"


def test_a_stale_online_value_is_caught_from_history(offline):
    # history: each user's earlier offline values; online served the older one
    hist = pa.table(
        {
            "user_id": np.arange(30),
            "event_time": pa.array([T0 - timedelta(days=1)] * 30, TS),
            "spend_7d": np.full(30, 12.25),
            "txn_count": np.zeros(30, dtype=np.int64),
            "segment": ["bronze"] * 30,
        }
    )
    spend = offline.column("spend_7d").to_numpy().copy()
    spend[:25] = 12.25
    report = skew(
        offline,
        served(offline, spend_7d=spend),
        KEYS,
        FEATURES,
        request_time="request_time",
        history=hist,
    )
    f = report.features["spend_7d"]
    assert f.stale == 25 and f.cause == "stale online value"
    assert report.features["txn_count"].cause is None


def test_missing_value_handling_is_caught(offline):
    # online fills a missing count with null where offline has a value, and vice versa
    counts = offline.column("txn_count").to_pylist()
    for i in range(0, 60, 2):
        counts[i] = None
    report = skew(
        offline, served(offline, txn_count=counts), KEYS, FEATURES, request_time="request_time"
    )
    f = report.features["txn_count"]
    assert f.cause == "missing value handling"
    assert (f.online_nulls, f.offline_nulls) == (30, 0)
    assert f.match_rate == pytest.approx((N - 30) / N)


def test_string_case_mismatch_and_unexplained_differences(offline):
    upper = [s.upper() for s in offline.column("segment").to_pylist()]
    report = skew(
        offline, served(offline, segment=upper), KEYS, FEATURES, request_time="request_time"
    )
    assert report.features["segment"].cause == "transform mismatch"
    assert "case" in report.features["segment"].detail
    spend = offline.column("spend_7d").to_numpy().copy()
    spend[7] += 1.0
    one = skew(
        offline, served(offline, spend_7d=spend), KEYS, FEATURES, request_time="request_time"
    )
    f = one.features["spend_7d"]
    assert f.cause == "unexplained" and f.status == "warn" and f.value_mismatches == 1


def test_unmatched_rows_and_duplicate_offline_keys(offline):
    extra = pa.table(
        {
            "user_id": [999],
            "request_time": pa.array([T0], TS),
            "spend_7d": [1.0],
            "txn_count": pa.array([1], pa.int64()),
            "segment": ["gold"],
            "event_time": pa.array([T0], TS),
        }
    )
    report = skew(
        offline, pa.concat_tables([offline, extra]), KEYS, FEATURES, request_time="request_time"
    )
    assert (report.online_rows, report.joined_rows, report.unmatched_rows) == (N + 1, N, 1)
    with pytest.raises(ValueError, match="duplicate"):
        skew(offline, offline, KEYS, FEATURES)  # keys without the request time repeat
    with pytest.raises(KeyError, match="no column"):
        skew(offline, offline, KEYS, ["nope"], request_time="request_time")
