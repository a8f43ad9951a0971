"""Fuzzing every way data and definitions come in: ingest frames in every accepted format,
contract YAML, definitions and HTTP bodies. Nothing may raise outside
`featureledger.errors`; a refused input leaves the previous version as it was, and its
message names the column or row (tests/fuzz/cases.py). Inputs that once crashed stay here
as explicit examples."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import example, given

from featureledger import FeatureStore

from .cases import (
    COLUMNS,
    T0,
    contract_texts,
    definitions,
    frames,
    fuzz_settings,
    http_bodies,
    run_contract,
    run_definition,
    run_http,
    run_ingest,
)

ROW = [1, T0, T0, 1, 1.5, "a"]


def _with(column: str, value: Any) -> list[Any]:
    row = list(ROW)
    row[COLUMNS.index(column)] = value
    return row


@fuzz_settings(12)
@given(case=frames())
# the crashes of the fuzz run, kept as regression cases
@example(case=("pandas", [*COLUMNS, "clicks"], [[*ROW, 2]]))  # duplicate column (pandas)
@example(case=("parquet", [*COLUMNS, "spend"], [[*ROW, 2.5]]))  # duplicate column (Parquet)
@example(case=("rows", COLUMNS, [_with("event_timestamp", datetime(1, 1, 1, tzinfo=UTC))]))
@example(case=("arrow", COLUMNS, [_with("created", datetime(1, 1, 1, tzinfo=UTC))]))
@example(case=("rows", COLUMNS, [_with("user_id", 2**63)]))  # beyond int64
@example(case=("columns", COLUMNS, [_with("clicks", 2**64)]))
@example(case=("rows", COLUMNS, []))  # an empty list
@example(
    case=(
        "rows",
        COLUMNS,
        [_with("event_timestamp", pd.Timestamp("2024-01-01T00:00:00.000000001Z"))],
    )
)
@example(case=("csv", COLUMNS, [_with("label", "x" * (20 << 20))]))  # a huge CSV cell
@example(case=("jsonl", COLUMNS, [ROW]))
def test_ingest_never_crashes(
    fuzz_store: FeatureStore, folder: Path, case: tuple[str, list[str], list[list[Any]]]
) -> None:
    run_ingest(fuzz_store, case, folder)


@fuzz_settings(200)
@given(text=contract_texts())
@example(
    text="apiVersion: featureledger/v1\nkind: DataContract\ndataset: g\n"
    "schema:\n  - name: g\n    properties:\n      - name: t\n        physicalType: timestamp\n"
    "slaProperties:\n  - rule: freshness\n    column: t\n    max_age: 99999999999999999999d\n"
)
@example(text="/no/such/contract.yaml")
def test_contract_yaml_never_crashes(text: str) -> None:
    run_contract(text)


@fuzz_settings(200)
@given(case=definitions())
@example(case=("feature_group", {"name": "g", "entity": None, "features": None}))
@example(case=("entity", {"name": "e", "join_keys": "user_id"}))
def test_definitions_never_crash(case: tuple[str, dict[str, Any]]) -> None:
    run_definition(case)


@fuzz_settings(40)
@given(case=http_bodies())
@example(case=("/push/strict_g", "writer", b"[" * 100_000 + b"]" * 100_000))
@example(case=("/push/strict_g", "writer", b'{"rows": [{"user_id": 18446744073709551616}]}'))
def test_http_bodies_never_give_5xx(
    fuzz_store: FeatureStore, http: tuple[Any, dict[str, str]], case: tuple[str, str, bytes]
) -> None:
    client, tokens = http
    run_http(client, tokens, fuzz_store, case)
