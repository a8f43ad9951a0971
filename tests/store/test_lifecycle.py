"""The store's lifecycle: `close` and ``with FeatureStore(...)`` finish background work
(statistics, feature logs, token-use audit entries) and release the online store, and a
closed store opens what it needs again on next use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup(
    "stats", USER, features=[Field("spend", "float64")], ttl=timedelta(days=1), online=True
)
VIEW = FeatureView("v", [STATS])


def _repo(tmp_path: Path) -> Path:
    with FeatureStore.init(tmp_path / "repo") as store:
        store.apply([USER, STATS, VIEW])
        store.ingest(
            "stats",
            {"user_id": [1, 2], "event_timestamp": [T0, T0], "spend": [1.0, 2.0]},
        )
        store.materialize()
    return tmp_path / "repo"


def test_leaving_the_with_block_writes_what_was_queued(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    with FeatureStore(repo) as store:
        record = store.versions("stats")[-1]
        store.get_online_features("v", [{"user_id": 1}], now=T0, log=True)
        token = store.create_token("reader", ["v"])
        store.audit_token_use(store.check_token(token), "feature_view/v", allowed=True)
    # another process (here: another store) sees everything the first one queued
    other = FeatureStore(repo)
    assert other.registry.get_stats(str(record.identity)) is not None
    logged = other.feature_log("v")
    assert logged.num_rows == 1 and logged.column("spend").to_pylist() == [1.0]
    uses = [e for e in other.audit_log() if e.action == "token-use"]
    assert len(uses) == 1 and uses[0].details["allowed"] is True


def test_close_releases_the_online_store_and_the_store_stays_usable(tmp_path: Path) -> None:
    store = FeatureStore(_repo(tmp_path))
    first = store.online_store()
    assert store.get_online_features("v", [{"user_id": 2}], now=T0).to_pylist()[0]["spend"] == 2.0
    store.close()
    # the old connection is closed: a read through it fails
    try:
        first.tables()
    except Exception:  # sqlite3.ProgrammingError: the connection is closed
        closed = True
    else:
        closed = False
    assert closed
    again = store.online_store()
    assert again is not first
    assert store.get_online_features("v", [{"user_id": 2}], now=T0).to_pylist()[0]["spend"] == 2.0
    store.close()
    store.close()  # closing twice is harmless
