"""Every OpenLineage event the demo emits is valid and carries the facets a consumer needs:
schemas, column lineage, per-column quality metrics and contract assertions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from featureledger.cli.main import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    repo = tmp_path_factory.mktemp("demo") / "repo"
    result = CliRunner().invoke(app, ["demo", str(repo)])
    assert result.exit_code == 0, result.output
    path = repo / ".featureledger" / "lineage" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_demo_event_validates(
    demo_events: list[dict[str, Any]], validate_event: Callable[[dict[str, Any]], None]
) -> None:
    assert len(demo_events) >= 40
    for event in demo_events:
        validate_event(event)


def ended(events: list[dict[str, Any]], job: str) -> list[dict[str, Any]]:
    return [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == job]


def test_feature_group_versions_carry_their_schema(demo_events: list[dict[str, Any]]) -> None:
    for event in demo_events:
        for ds in [*event["inputs"], *event["outputs"]]:
            if ds["name"].startswith(("feature_group/", "training_dataset/")):
                fields = ds["facets"]["schema"]["fields"]
                assert fields and all(f["name"] for f in fields), ds["name"]
    [first, *_] = ended(demo_events, "featureledger.ingest.user_txn_stats")
    fields = {f["name"]: f["type"] for f in first["outputs"][0]["facets"]["schema"]["fields"]}
    assert fields["user_id"] and fields["txn_count_24h"]


def test_training_sets_carry_column_lineage_back_to_the_pinned_groups(
    demo_events: list[dict[str, Any]],
) -> None:
    # the demo builds the training set, its time-travel twin, then the FTI story's split set
    runs = ended(demo_events, "featureledger.training_data.fraud")
    assert len(runs) >= 2
    first = runs[0]
    [output] = first["outputs"]
    lineage = output["facets"]["columnLineage"]["fields"]
    inputs = {ds["name"] for ds in first["inputs"]}
    assert len(lineage) >= 4
    for column, spec in lineage.items():
        [source] = spec["inputFields"]
        assert source["name"] in inputs, column
        assert source["transformations"][0]["type"] == "DIRECT"
    typed = {f["name"]: f.get("type") for f in output["facets"]["schema"]["fields"]}
    assert all(typed[c] for c in lineage)  # every feature column has its group's type
    assert typed["user_id"]  # and a join key its entity's


def test_inputs_carry_column_metrics_and_contract_assertions(
    demo_events: list[dict[str, Any]],
) -> None:
    # the demo builds the training set, its time-travel twin, then the FTI story's split set
    runs = ended(demo_events, "featureledger.training_data.fraud")
    assert len(runs) >= 2
    first = runs[0]
    by_name = {ds["name"]: ds["inputFacets"] for ds in first["inputs"]}
    metrics = by_name["feature_group/user_txn_stats@v1"]["dataQualityMetrics"]
    assert metrics["rowCount"] > 0
    amount = metrics["columnMetrics"]["txn_amount_24h"]
    assert amount["nullCount"] >= 0 and amount["min"] <= amount["max"]
    assert amount["distinctCount"] > 1
    # the contract the ingest that wrote the pinned version was checked against
    assertions = by_name["feature_group/user_txn_stats@v1"]["dataQualityAssertions"]["assertions"]
    assert {a["name"] for a in assertions} >= {"range(txn_amount_24h)"}
    assert all(isinstance(a["success"], bool) for a in assertions)
    assert {a["column"] for a in assertions if "column" in a} >= {"txn_amount_24h"}


def test_a_sql_pipeline_output_has_column_lineage_to_its_source_file(
    demo_events: list[dict[str, Any]],
) -> None:
    [run] = ended(demo_events, "featureledger.pipeline.merchant_daily")
    [source] = run["inputs"]
    lineage = run["outputs"][0]["facets"]["columnLineage"]["fields"]
    by_column = {
        column: {(f["field"], f["transformations"][0]["subtype"]) for f in spec["inputFields"]}
        for column, spec in lineage.items()
    }
    assert by_column == {
        "merchant_id": {("merchant_id", "IDENTITY")},
        "event_timestamp": {("event_timestamp", "TRANSFORMATION")},
        "merchant_avg_amount_1d": {("amount", "AGGREGATION")},
    }  # count(*) reads no column
    assert all(
        f["name"] == source["name"] and f["namespace"] == source["namespace"]
        for spec in lineage.values()
        for f in spec["inputFields"]
    )
