"""Deployments: the sticky canary split, shadow, fallback, promote/rollback/status, and
delayed labels joined to logged predictions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featureledger.errors import DataError, NotFoundError
from featureledger.store._deployments import sticky_bucket
from predicting import Models, make_store


def reference_bucket(deployment: str, key: list[object]) -> float:
    """The split written out plainly: the low 32 bits of an 8-byte BLAKE2b of the JSON of
    [deployment, *key], as a fraction of 2**32."""
    text = json.dumps([deployment, *key], default=str, separators=(",", ":"))
    low = hashlib.blake2b(text.encode(), digest_size=8).digest()[4:]
    return int.from_bytes(low, "big") / 2**32


keys = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20))


@given(st.text(min_size=1, max_size=12), st.lists(keys, min_size=1, max_size=3))
def test_bucket_equals_the_reference_and_is_sticky(deployment: str, key: list[object]) -> None:
    first = sticky_bucket(deployment, key)
    assert first == reference_bucket(deployment, key)
    assert sticky_bucket(deployment, list(key)) == first  # same entity, same arm
    assert 0.0 <= first < 1.0


@settings(max_examples=25, deadline=None)
@given(
    st.floats(0.02, 0.98),
    st.integers(0, 2**32),
    st.sampled_from(["fraud", "ranker", "d1"]),
)
def test_canary_share_is_its_weight(weight: float, offset: int, deployment: str) -> None:
    n = 4000
    hits = sum(sticky_bucket(deployment, [offset + i]) < weight for i in range(n))
    sd = (n * weight * (1 - weight)) ** 0.5
    assert abs(hits - n * weight) <= 5 * sd  # a binomial share: 5 sigma


@pytest.fixture
def models(tmp_path: Path) -> Models:
    m = make_store(tmp_path)
    m.store.deploy("api", "clf", 1)
    return m


def test_canary_answers_its_sticky_share_with_its_own_model(models: Models) -> None:
    store = models.store
    store.canary("api", "clf", 2, weight=0.3)
    users = list(range(60))
    first = store.predict("api", [{"user_id": u} for u in users])
    again = store.predict("api", [{"user_id": u} for u in reversed(users)])[::-1]
    for u, a, b in zip(users, first, again, strict=True):
        canary = reference_bucket("api", [u]) < 0.3
        assert a["role"] == b["role"] == ("canary" if canary else "primary")
        assert a["model"] == b["model"] == ("model/clf/2" if canary else "model/clf/1")
        assert a["prediction"] == b["prediction"] and not a["fallback"]
        assert a["feature_versions"] == {"feature_group/g@v1": 1}
    status = store.deployment_status("api")
    assert status["traffic"] == {"primary": pytest.approx(0.7), "canary": pytest.approx(0.3)}
    canaries = sum(a["role"] == "canary" for a in first)
    assert status["served"]["canary"] == {"model/clf/2": 2 * canaries}
    assert status["served"]["primary"] == {"model/clf/1": 2 * (60 - canaries)}


def test_answers_equal_the_models_own_predictions(models: Models) -> None:
    store = models.store
    got = store.predict("api", [{"user_id": 4}, {"user_id": 9}])
    online = store.get_online_features("v", [{"user_id": 4}, {"user_id": 9}]).to_pandas()
    expected = models.clf.predict_proba(online[["x", "y"]])[:, 1]
    assert [a["score"] for a in got] == pytest.approx(expected.tolist())
    assert [a["user_id"] for a in got] == [4, 9]


def test_shadow_is_logged_never_returned(models: Models) -> None:
    store = models.store
    store.shadow("api", "reg")
    answers = store.predict("api", [{"user_id": u} for u in range(10)])
    assert {a["role"] for a in answers} == {"primary"}
    assert {a["model"] for a in answers} == {"model/clf/1"}
    store.flush_predictions()
    log = store.prediction_log("api").to_pandas()
    shadow = log[log["role"] == "shadow"]
    assert sorted(shadow["user_id"]) == list(range(10))
    assert set(shadow["model"]) == {"model/reg/1"}
    assert shadow["score"].isna().all()  # a regressor
    ids = {a["prediction_id"] for a in answers}
    assert set(log[log["role"] == "primary"]["prediction_id"]) == ids


def test_missing_features_fall_back_to_the_simpler_model(models: Models) -> None:
    store = models.store
    store.configure_deployment("api", fallback="prior")
    got = store.predict("api", [{"user_id": 1}, {"user_id": 999}])
    assert got[0]["role"] == "primary" and not got[0]["fallback"]
    answer = got[1]
    assert answer["fallback"] and answer["role"] == "fallback"
    assert answer["model"] == "model/prior/1"
    assert "missing features" in answer["reason"]
    assert answer["feature_versions"] == {"feature_group/h@v1": 1}
    z = pd.DataFrame({"z": [0.5]})
    assert answer["score"] == pytest.approx(models.prior.predict_proba(z)[0, 1])
    store.flush_predictions()
    log = store.prediction_log("api").to_pandas()
    assert log.loc[log["user_id"] == 999, "fallback"].tolist() == [True]


def test_a_raising_model_falls_back_to_the_last_prediction(models: Models) -> None:
    store = models.store
    before = store.predict("api", [{"user_id": 5}])[0]
    store.deploy("api", "broken")
    got = store.predict("api", [{"user_id": 5}, {"user_id": 6}])
    assert got[0]["fallback"] and got[0]["role"] == "fallback"
    assert got[0]["prediction"] == before["prediction"] and got[0]["model"] == "model/clf/1"
    assert "model/broken/1 raised" in got[0]["reason"]
    # no earlier answer for user 6 and no fallback model: flagged, no prediction
    assert got[1]["fallback"] and got[1]["prediction"] is None
    # a new process primes the last predictions from the log
    store.flush_predictions()
    from featureledger import FeatureStore

    with FeatureStore(store.repo) as fresh:
        again = fresh.predict("api", [{"user_id": 5}])[0]
    assert again["prediction"] == before["prediction"] and again["fallback"]


def test_promote_rollback_and_refusals(models: Models) -> None:
    store = models.store
    with pytest.raises(NotFoundError, match="no canary or shadow"):
        store.promote("api")
    store.canary("api", "clf", 2, weight=0.5)
    ended = store.rollback_deployment("api", reason="canary looked worse")
    assert ended.model_version == 1 and "canary" not in ended.config
    store.canary("api", "clf", 2, weight=0.5)
    promoted = store.promote("api", reason="canary looked fine")
    assert (promoted.model, promoted.model_version, promoted.action) == ("clf", 2, "promote")
    assert {a["model"] for a in store.predict("api", [{"user_id": u} for u in range(9)])} == {
        "model/clf/2"
    }
    back = store.rollback_deployment("api")
    assert back.model_version == 1
    assert [d.action for d in store.deployments("api")] == [
        "deploy",
        "canary",
        "rollback",
        "canary",
        "promote",
        "rollback",
    ]
    with pytest.raises(DataError, match="between 0 and 1"):
        store.canary("api", "clf", 2, weight=1.5)
    with pytest.raises(DataError, match="lacks the key"):
        store.predict("api", [{"customer": 1}])
    with pytest.raises(NotFoundError):
        store.predict("nothing", [{"user_id": 1}])


def test_realized_performance_joins_delayed_labels(models: Models) -> None:
    store = models.store
    store.deploy("api", "reg")
    answers = store.predict("api", [{"user_id": u} for u in range(20)])
    store.flush_predictions()
    truth = np.arange(20, dtype=float)
    # half the labels by prediction id, half by entity key and event time
    log = store.prediction_log("api").to_pandas().set_index("prediction_id")
    by_id = pa.table(
        {"prediction_id": [a["prediction_id"] for a in answers[:10]], "label": truth[:10]}
    )
    rest = log.loc[[a["prediction_id"] for a in answers[10:]]]
    by_key = pa.table(
        {
            "user_id": rest["user_id"].tolist(),
            "event_timestamp": pa.array(
                rest["event_timestamp"].tolist(), pa.timestamp("us", tz="UTC")
            ),
            "label": truth[10:],
        }
    )
    assert store.log_labels("api", by_id) == 10
    assert store.log_labels("api", by_key) == 10
    perf = store.realized_performance("api", "1d").to_pylist()
    assert len(perf) == 1 and perf[0]["role"] == "primary" and perf[0]["rows"] == 20
    predicted = np.array([a["prediction"] for a in answers])
    error = predicted - truth
    assert perf[0]["mae"] == pytest.approx(sum(abs(e) for e in error) / 20)
    assert perf[0]["rmse"] == pytest.approx((sum(e * e for e in error) / 20) ** 0.5)
    with pytest.raises(DataError, match="label"):
        store.log_labels("api", {"prediction_id": ["x"]})
