"""Column lineage of pipeline transformations, as the store puts it in OpenLineage events."""

from __future__ import annotations

import pytest

from featureledger.lineage import DatasetInfo
from featureledger.lineage.facts import pipeline_column_lineage, sql_column_lineage

DAILY = """
    SELECT user_id, date_trunc('day', event_timestamp) + INTERVAL 1 DAY AS event_timestamp,
           sum(amount) AS spend, count(*) AS n, amount * 2 AS doubled
    FROM source WHERE event_timestamp >= $start AND event_timestamp < $end
    GROUP BY ALL
"""


def test_sql_column_lineage_follows_each_output_column() -> None:
    found = sql_column_lineage(DAILY, ["user_id", "event_timestamp", "amount"])
    assert found == {
        "user_id": (["user_id"], "IDENTITY"),
        "event_timestamp": (["event_timestamp"], "TRANSFORMATION"),
        "spend": (["amount"], "AGGREGATION"),
        "n": ([], "AGGREGATION"),
        "doubled": (["amount"], "TRANSFORMATION"),
    }


@pytest.mark.parametrize("query", ["SELEC nonsense", "SELECT * FROM source"])
def test_what_sqlglot_cannot_follow_gives_no_lineage_rather_than_an_error(query: str) -> None:
    found = sql_column_lineage(query)
    assert all(isinstance(cols, list) for cols, _ in found.values())


def test_pipeline_lineage_maps_columns_to_every_input() -> None:
    output = DatasetInfo(schema=[{"name": "user_id"}, {"name": "spend"}])
    params = {
        "transform": {"type": "sql", "query": "SELECT user_id, sum(x) AS spend FROM source"},
        "source_columns": ["user_id", "x"],
    }
    assert pipeline_column_lineage(params, ["file:/a.parquet@sha256:00"], output) == {
        "user_id": [("file:/a.parquet@sha256:00", "user_id", "DIRECT", "IDENTITY")],
        "spend": [("file:/a.parquet@sha256:00", "x", "DIRECT", "AGGREGATION")],
    }
    # no transformation: each column comes unchanged from the source
    assert pipeline_column_lineage({"transform": None}, ["g@v1#1"], output)["spend"] == [
        ("g@v1#1", "spend", "DIRECT", "IDENTITY")
    ]
    # a Python function declares no per-column inputs
    assert pipeline_column_lineage({"transform": {"type": "python"}}, ["g@v1#1"], output) == {}
