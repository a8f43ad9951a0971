"""Compaction rewrites files without changing what any reader sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field, content_hash

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_compact_keeps_content_and_training_results(tmp_path: Path) -> None:
    store = FeatureStore.init(tmp_path / "repo")
    user = Entity("user", join_keys=["user_id"])
    group = FeatureGroup("g", user, features=[Field("x", "float64")], ttl=timedelta(hours=5))
    store.apply([user, group, FeatureView("v", [group])])
    for i in range(6):  # six ingests leave six files
        store.ingest(
            "g",
            {
                "user_id": [i % 3, (i + 1) % 3],
                "event_timestamp": [T0 + timedelta(hours=i)] * 2,
                "x": [i, -i],
            },
        )
    entities = pa.table(
        {
            "user_id": [0, 1, 2, 3],
            "event_timestamp": [T0 + timedelta(hours=h) for h in (3, 5, 9, 1)],
        }
    )
    before = store.training_data("v", entities).to_arrow()
    parent = store.versions("g")[-1]

    record = store.compact("g")

    assert record.version == parent.version + 1
    assert record.operation == "compact"
    assert record.content == parent.content
    assert content_hash(store.read("g")) == parent.content
    assert len(store._svc.tables.table("g", 1).files(record.version)) < len(
        store._svc.tables.table("g", 1).files(parent.version)
    )
    after = store.training_data("v", entities)
    assert after.to_arrow().equals(before)
    assert after.record.pins["g"]["version"] == record.version
    # nothing left to compact: no new version
    assert store.compact("g").version == record.version
