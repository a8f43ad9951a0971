"""A real redis-server stopped under a store: a clear, retryable error, and the offline
fallback when the repository asks for it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.errors import FeatureLedgerError, OnlineStoreUnavailable

from .conftest import _start, _stop

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup(
    "stats", USER, features=[Field("spend", "float64"), Field("n", "int64")], online=True
)


def _configure(repo: Path, **online: object) -> None:
    path = repo / "featureledger.yaml"
    config = yaml.safe_load(path.read_text())
    config["online"] |= online
    path.write_text(yaml.safe_dump(config))


def test_stopping_redis_gives_online_store_unavailable_then_the_fallback(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing; run scripts/install-services.sh"
    with (tmp_path / "redis.log").open("wb") as log:
        proc = None
        for _attempt in range(5):
            port = free_port()
            proc = _start(binary, port, tmp_path, log)
            if proc is not None:
                break
        assert proc is not None, "redis-server did not start"
        try:
            repo = tmp_path / "repo"
            FeatureStore.init(repo)
            _configure(repo, type="redis", url=f"redis://127.0.0.1:{port}/0")
            store = FeatureStore(repo)
            store.apply([USER, STATS, FeatureView("spend", [STATS])])
            store.ingest(
                "stats",
                {"user_id": [1, 2], "event_timestamp": [T0, T0], "spend": [1.5, 2.5], "n": [1, 2]},
            )
            store.materialize()
            rows = [{"user_id": 2}, {"user_id": 1}, {"user_id": 9}]
            served = store.get_online_features("spend", rows).to_pylist()
            assert served[0]["spend"] == 2.5 and served[2]["spend"] is None
        finally:
            _stop(proc)  # the real server goes away under the store
    with pytest.raises(OnlineStoreUnavailable) as caught:
        store.get_online_features("spend", rows)
    err = caught.value
    assert err.retryable and isinstance(err, FeatureLedgerError)
    assert f"127.0.0.1:{port}" in str(err) and "nothing was changed" in str(err)
    with pytest.raises(OnlineStoreUnavailable):  # the one-entity fast path too
        store.get_online_features("spend", [{"user_id": 1}])
    with pytest.raises(OnlineStoreUnavailable):  # and writes
        store.push("stats", {"user_id": [3], "event_timestamp": [T0], "spend": [0.5], "n": [3]})
    _configure(repo, fallback="offline")
    fallback = FeatureStore(repo)
    got = fallback.get_online_features("spend", rows)
    assert got.source == "offline-fallback"
    assert got.to_pylist() == served  # the values the online store served, in order
    one = fallback.get_online_features("spend", [{"user_id": 1}])
    assert one.source == "offline-fallback" and one.to_pylist() == [served[1]]
