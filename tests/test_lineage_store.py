"""Lineage as the store records it: from a deployment back to the raw file, impact of a bad
version, and OpenLineage events written for every run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.definitions import FileSource, SQLTransform

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])


def build(tmp_path: Path) -> FeatureStore:
    store = FeatureStore.init(tmp_path / "repo")
    pq.write_table(
        pa.table({"user_id": [1, 2, 1], "event_timestamp": [T0] * 3, "amount": [1.0, 2.0, 3.0]}),
        store.repo / "raw.parquet",
    )
    spend = FeatureGroup(
        "spend",
        USER,
        features=[Field("total", "float64")],
        source=FileSource("raw.parquet"),
        transform=SQLTransform(
            "SELECT user_id, max(event_timestamp) AS event_timestamp, "
            "sum(amount) AS total FROM source GROUP BY user_id"
        ),
    )
    store.apply([USER, spend, FeatureView("v", [spend])])
    store.run_pipeline("spend", start=T0, end=T0 + timedelta(days=1))
    td = store.training_data("v", pa.table({"user_id": [1, 2], "event_timestamp": [T0, T0]}))
    weights = store.repo / "m.json"
    weights.write_text("{}")
    store.register_model("m", weights, training_dataset=td)
    store.deploy("api", "m")
    return store


def test_upstream_lineage_reaches_the_raw_file_from_the_deployment(tmp_path: Path) -> None:
    store = build(tmp_path)
    text = store.lineage("deployment/api")
    for ident in (
        "model/m/1",
        "training_dataset/v@v1/1",
        "feature_group/spend@v1#1",
        "raw.parquet",
    ):
        assert ident in text
    data = json.loads(store.lineage("deployment/api", format="json"))
    assert any(n["id"].startswith("file:") for n in data["nodes"])
    assert store.lineage("deployment/api", format="mermaid").startswith("flowchart")


def test_impact_of_a_data_version_lists_exactly_its_dependents(tmp_path: Path) -> None:
    store = build(tmp_path)
    impact = json.loads(store.impact_report("feature_group/spend@v1#1", format="json"))
    flat = json.dumps(impact)
    assert "training_dataset/v@v1/1" in flat and "model/m/1" in flat
    assert "deployment/api" in flat
    # the empty version 0 was overwritten by nothing: it feeds version 1 only
    assert "feature_group/spend@v1#0" not in json.dumps(impact.get("training_datasets", []))


def test_every_run_is_emitted_as_openlineage_events(tmp_path: Path) -> None:
    store = build(tmp_path)
    path = store.repo / ".featureledger" / "lineage" / "events.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = {(e["eventType"], e["job"]["name"].split(".")[1]) for e in events}
    assert ("COMPLETE", "pipeline") in kinds
    assert ("COMPLETE", "training_data") in kinds
    runs = {e["run"]["runId"] for e in events}
    assert len(runs) >= 3
