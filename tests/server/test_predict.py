"""``POST /predict/{deployment}`` over HTTP: a real uvicorn on loopback, called with httpx."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from predicting import make_store

from .conftest import Server

pytestmark = pytest.mark.server


def test_predict_is_refused_by_default_and_served_with_a_grant(
    tmp_path: Path, serve: Callable[..., AbstractContextManager[Server]]
) -> None:
    models = make_store(tmp_path)
    store = models.store
    store.deploy("fraud", "clf", 1)
    store.deploy("other", "reg")
    store.configure_deployment("fraud", fallback="prior")
    store.shadow("fraud", "clf", 2)
    reader = store.create_token("reader", all_views=True)
    granted = store.create_token("reader", deployments=["fraud"])
    elsewhere = store.create_token("reader", deployments=["other"])
    body = {"entities": [{"user_id": 3}, {"user_id": 999}]}
    with serve(store) as server:
        assert server.client().post("/predict/fraud", json=body).status_code == 401
        refused = server.client(reader).post("/predict/fraud", json=body)
        assert refused.status_code == 403, refused.text
        assert "--deployment fraud" in refused.json()["detail"]
        assert server.client(elsewhere).post("/predict/fraud", json=body).status_code == 403
        client = server.client(granted)
        r = client.post("/predict/fraud", json=body)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["deployment"] == "fraud"
        first, second = got["predictions"]
        assert first["user_id"] == 3 and first["role"] == "primary"
        assert first["model"] == "model/clf/1" and first["fallback"] is False
        assert first["feature_versions"] == {"feature_group/g@v1": 1}
        assert 0.0 <= first["score"] <= 1.0 and first["prediction"] in (0.0, 1.0)
        assert first["score"] == pytest.approx(store.predict("fraud", [{"user_id": 3}])[0]["score"])
        # user 999 lacks the primary's features: the simpler model answers, flagged
        assert second["fallback"] is True and second["role"] == "fallback"
        assert second["model"] == "model/prior/1" and "missing features" in second["reason"]
        assert client.post("/predict/fraud", json={"entities": []}).status_code == 422
        missing_key = client.post("/predict/fraud", json={"entities": [{"customer": 1}]})
        assert missing_key.status_code == 422 and "lacks the key" in missing_key.json()["detail"]
        too_many = {"entities": [{"user_id": 1}] * (server.max_entities + 1)}
        assert client.post("/predict/fraud", json=too_many).status_code == 413
        spec = server.client().get("/openapi.json").json()
        assert "/predict/{deployment}" in spec["paths"]
    # the server flushed its log on shutdown: every answer, and the shadow's copies
    log = store.prediction_log("fraud").to_pandas()
    served = log[log["role"] != "shadow"]
    assert set(served["role"]) == {"primary", "fallback"}
    assert sorted(log[log["role"] == "shadow"]["user_id"]) == [3, 3, 999]
    assert set(log[log["role"] == "shadow"]["model"]) == {"model/clf/2"}
    ids = {first["prediction_id"], second["prediction_id"]}
    assert ids <= set(served["prediction_id"])
