"""Fixtures for the lineage tests: registry records and an offline OpenLineage validator."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlparse

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from featureledger.hashing import ContentHash
from featureledger.registry.base import DataVersion, RunRecord, TrainingDatasetRecord

SCHEMAS = Path(__file__).parent / "schemas"
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _format_checker() -> FormatChecker:
    # jsonschema checks date-time and uri only with optional packages; check them here
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return "T" in value.upper() and datetime.fromisoformat(value).tzinfo is not None

    @checker.checks("uri")
    def uri(value: object) -> bool:
        return not isinstance(value, str) or bool(urlparse(value).scheme)

    return checker


@pytest.fixture(scope="session")
def schema_registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*.json")):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


def _facets(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(f"run.{k}", v) for k, v in event["run"].get("facets", {}).items()]
    found += [(f"job.{k}", v) for k, v in event["job"].get("facets", {}).items()]
    for side in ("inputs", "outputs"):
        for ds in event.get(side, []):
            for bag in ("facets", "inputFacets", "outputFacets"):
                found += [(f"{side}.{ds['name']}.{bag}.{k}", v) for k, v in ds.get(bag, {}).items()]
    return found


@pytest.fixture(scope="session")
def validate_event(schema_registry: Registry) -> Callable[[dict[str, Any]], None]:
    """Validate a RunEvent (as JSON) against the 2-0-2 RunEvent schema, and every facet
    against the schema its ``_schemaURL`` names; a facet with no schema here fails."""
    checker = _format_checker()

    def validator(url: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": url}, registry=schema_registry, format_checker=checker)

    def check(event: dict[str, Any]) -> None:
        problems = [
            f"event: {e.message} at {list(e.absolute_path)}"
            for e in validator(f"{CORE}#/$defs/RunEvent").iter_errors(event)
        ]
        assert event["schemaURL"] == f"{CORE}#/$defs/RunEvent"
        for where, facet in _facets(event):
            url = facet.get("_schemaURL", "")
            if urldefrag(url).url not in schema_registry:
                problems.append(f"{where}: no schema for {url}; add it to tests/lineage/schemas")
                continue
            problems += [f"{where}: {e.message}" for e in validator(url).iter_errors(facet)]
        assert not problems, "\n".join(problems)

    return check


# -- records -----------------------------------------------------------------------------------
def run_id(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def data_version(
    group: str, version: int, operation: str, run: str | None, note: str = "", major: int = 1
) -> DataVersion:
    return DataVersion(
        group=group,
        major=major,
        version=version,
        operation=operation,
        rows=10 * version,
        rows_added=10,
        rows_removed=0,
        content=ContentHash(version, version, version),
        schema_hash="s",
        files={},
        run_id=run,
        user="ada",
        created_at=T0 + timedelta(minutes=version),
        note=note,
    )


def run_record(
    rid: str,
    kind: str,
    inputs: list[str],
    outputs: list[str],
    *,
    status: str = "succeeded",
    params: dict[str, Any] | None = None,
) -> RunRecord:
    return RunRecord(
        id=rid,
        kind=kind,
        status=status,
        user="ada",
        started_at=T0,
        ended_at=T0 + timedelta(seconds=3),
        params=params or {},
        inputs=inputs,
        outputs=outputs,
        code_hash="c0de",
        env_hash="e0e0",
    )


def training_dataset(
    view: str, number: int, pins: dict[str, tuple[int, int]], run: str, major: int = 1
) -> TrainingDatasetRecord:
    return TrainingDatasetRecord(
        view=view,
        major=major,
        number=number,
        pins={
            g: {"major": m, "version": v, "identity": f"feature_group/{g}@v{m}#{v}"}
            for g, (m, v) in pins.items()
        },
        entity_hash="e",
        content=ContentHash(1, 2, 3),
        rows=100,
        columns=["user_id", "f0"],
        entity_path="entities.parquet",
        output_path=None,
        run_id=run,
        user="ada",
        created_at=T0 + timedelta(hours=number),
    )


# -- the fraud world: two groups, one view, three training sets, three models ------------------
USERS_SRC = "s3://raw/users.parquet"
TXN_SRC = "/data/raw/txn.csv"


def us(v: int) -> str:
    return f"feature_group/user_stats@v1#{v}"


def tx(v: int) -> str:
    return f"feature_group/txn@v1#{v}"


def fraud_records() -> list[object]:
    """user_stats: #0 create, #1 #2 upsert, #3 overwrite, #4 upsert, #5 rollback to #2;
    txn: #0 create, #1 append, #2 upsert, #3 compact. Training sets pin
    /1 = (us#2, tx#1), /2 = (us#4, tx#3), /3 = (us#5, tx#2); model fraud_xgb/N is trained
    on /N; deployment fraud served model 1, then 2, then (rolled back) 1 again;
    deployment shadow serves model 3."""
    from featureledger.lineage import DeploymentRecord, ModelRecord
    from featureledger.registry.base import DefinitionRecord

    records: list[object] = []
    n = 0
    for group, ops, source in (
        (
            "user_stats",
            ["create", "upsert", "upsert", "overwrite", "upsert", "rollback"],
            USERS_SRC,
        ),
        ("txn", ["create", "append", "upsert", "compact"], TXN_SRC),
    ):
        for version, op in enumerate(ops):
            rid = run_id(n)
            n += 1
            params: dict[str, Any] = {"group": group, "major": 1}
            note = ""
            inputs = [source] if op in ("append", "upsert", "overwrite") else []
            if op == "rollback":
                params["to"] = 2
                note = "rollback to #2: bad upstream file"
            kind = {"rollback": "rollback", "compact": "compact"}.get(op, "ingest")
            records.append(data_version(group, version, op, rid, note))
            records.append(
                run_record(
                    rid, kind, inputs, [f"feature_group/{group}@v1#{version}"], params=params
                )
            )
    for number, pins in ((1, (2, 1)), (2, (4, 3)), (3, (5, 2))):
        rid = run_id(100 + number)
        td = training_dataset(
            "fraud", number, {"user_stats": (1, pins[0]), "txn": (1, pins[1])}, rid
        )
        records.append(td)
        records.append(
            run_record(
                rid,
                "training-data",
                [us(pins[0]), tx(pins[1])],
                [str(td.identity)],
                params={"view": "fraud", "major": 1},
            )
        )
        records.append(ModelRecord("fraud_xgb", number, str(td.identity), run_id(200 + number)))
    records += [
        DeploymentRecord("fraud", "model/fraud_xgb/1", T0 + timedelta(days=1)),
        DeploymentRecord("fraud", "model/fraud_xgb/2", T0 + timedelta(days=2)),
        DeploymentRecord("fraud", "model/fraud_xgb/1", T0 + timedelta(days=3)),
        DeploymentRecord("shadow", "model/fraud_xgb/3", T0 + timedelta(days=3)),
    ]
    for kind, name, spec in (
        ("feature_group", "user_stats", {"name": "user_stats"}),
        ("feature_group", "txn", {"name": "txn"}),
        (
            "feature_view",
            "fraud",
            {
                "name": "fraud",
                "sources": [
                    {"group": "user_stats", "major": 1, "features": ["f0"], "join_key_map": {}},
                    {"group": "txn", "major": 1, "features": ["g0"], "join_key_map": {}},
                ],
            },
        ),
    ):
        records.append(DefinitionRecord(kind, name, 1, 0, 0, spec, "h", T0, "ada"))
    return records


@pytest.fixture
def fraud():
    from featureledger.lineage import build_graph

    return build_graph(fraud_records())
