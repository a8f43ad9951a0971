"""Write-audit-publish: contracts on ingest under each policy, contract changes on apply,
contract tests on stored data, and the privacy and licence gates."""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.contracts import Contract, Range, RowCount, contract_to_yaml
from featureledger.definitions import FileSource, GroupSource, SQLTransform
from featureledger.errors import (
    BreakingChangeError,
    ContractViolation,
    DefinitionError,
    LicenseError,
)
from featureledger.repo import load_definitions

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])


def group(policy: str = "strict", low: float = 0.0, rules: tuple = ()) -> FeatureGroup:
    base = FeatureGroup("g", USER, features=[Field("amount", "float64")], policy=policy)
    contract = Contract.from_feature_group(
        base, rules=[Range("amount", min=low, max=100.0), *rules]
    )
    return dataclasses.replace(base, contract=contract)


def batch(amounts: list[float], start: int = 0) -> pa.Table:
    return pa.table(
        {
            "user_id": list(range(start, start + len(amounts))),
            "event_timestamp": [T0] * len(amounts),
            "amount": amounts,
        }
    )


def make(tmp_path: Path, g: FeatureGroup) -> FeatureStore:
    store = FeatureStore.init(tmp_path / "repo")
    store.apply([USER, g])
    return store


def test_strict_rejects_whole_batch_and_keeps_it(tmp_path: Path) -> None:
    store = make(tmp_path, group("strict"))
    store.ingest("g", batch([1.0, 2.0]))
    with pytest.raises(ContractViolation) as err:
        store.ingest("g", batch([5.0, -3.0, 500.0], start=10))
    text = str(err.value)
    assert "amount" in text and "2" in text and "kept at" in text
    assert [v.version for v in store.versions("g")] == [0, 1]  # nothing written
    rejected = next(v for v in store.validations("g") if v.status == "rejected")
    assert rejected.rows_in == 3 and rejected.rows_published == 0
    kept = pq.read_table(rejected.rejected_path)
    assert kept.column("amount").to_pylist() == [5.0, -3.0, 500.0]  # nothing lost
    assert store.registry.run(rejected.run_id).status == "rejected"


def test_quarantine_publishes_valid_rows_and_loses_none(tmp_path: Path) -> None:
    store = make(tmp_path, group("quarantine"))
    rec = store.ingest("g", batch([5.0, -3.0, 7.0, 500.0]))
    held = store.quarantined("g")
    assert rec.rows_added + held.num_rows == 4
    assert sorted(store.read("g").column("amount").to_pylist()) == [5.0, 7.0]
    assert sorted(held.column("amount").to_pylist()) == [-3.0, 500.0]
    assert all(rules for rules in held.column("__fl_failed_rules").to_pylist())
    report = store.validations("g", version=rec.version)[0]
    assert report.status == "quarantined" and report.rows_quarantined == 2
    run = held.column("__fl_run")[0].as_py()
    # fix and re-ingest, then resolve the quarantine of that run
    fixed = held.drop_columns(["__fl_failed_rules", "__fl_run", "__fl_quarantined_at"])
    fixed = fixed.set_column(2, "amount", pa.array([0.0, 100.0]))
    store.ingest("g", fixed)
    assert store.read("g").num_rows == 4
    assert store.resolve_quarantine("g", run=run, reason="re-ingested") == 2
    assert store.quarantined("g").num_rows == 0


def test_quarantine_of_all_rows_writes_no_version(tmp_path: Path) -> None:
    store = make(tmp_path, group("quarantine"))
    before = store.versions("g")[-1]
    assert store.ingest("g", batch([-1.0, -2.0])).version == before.version
    assert store.quarantined("g").num_rows == 2


def test_quarantine_rejects_when_a_batch_rule_fails(tmp_path: Path) -> None:
    store = make(tmp_path, group("quarantine", rules=(RowCount(min=5),)))
    with pytest.raises(ContractViolation):
        store.ingest("g", batch([1.0, 2.0]))
    assert store.quarantined("g").num_rows == 0
    assert store.validations("g")[-1].status == "rejected"


def test_warn_publishes_and_records(tmp_path: Path) -> None:
    store = make(tmp_path, group("warn"))
    rec = store.ingest("g", batch([1.0, -1.0]))
    assert rec.rows == 2
    assert store.validations("g", version=rec.version)[0].status == "warned"


def test_contract_changes_on_apply(tmp_path: Path) -> None:
    store = make(tmp_path, group("strict", low=0.0))
    with pytest.raises(BreakingChangeError, match="contract"):
        store.apply([group("strict", low=10.0)])  # tightened
    plan = store.apply([group("strict", low=-10.0)])  # loosened
    item = next(i for i in plan.items if i.identity.startswith("feature_group"))
    assert item.action == "update" and item.after == "1.1.0"
    assert store.get_feature_group("g").contract.rules[0].min == -10.0


def test_contract_check_on_stored_data(tmp_path: Path) -> None:
    store = make(tmp_path, group("warn"))
    store.ingest("g", batch([1.0, -1.0]))
    report = store.check_contract("g")
    assert not report.ok
    store.apply([group("warn", low=-5.0)])
    assert store.check_contract("g").ok


def test_yaml_contract_next_to_definitions_is_attached(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    FeatureStore.init(repo)
    (repo / "features.py").write_text(
        textwrap.dedent("""
        from featureledger import Entity, FeatureGroup, Field
        user = Entity("user", join_keys=["user_id"])
        g = FeatureGroup("g", user, features=[Field("amount", "float64")])
    """)
    )
    (repo / "contracts").mkdir()
    (repo / "contracts" / "g.yaml").write_text(contract_to_yaml(group().contract))
    defs = load_definitions(repo)
    g = next(d for d in defs if isinstance(d, FeatureGroup))
    assert g.contract == group().contract
    store = FeatureStore(repo)
    store.apply(defs)
    with pytest.raises(ContractViolation):
        store.ingest("g", batch([-1.0]))


def test_pii_columns_need_a_purpose(tmp_path: Path) -> None:
    g = FeatureGroup(
        "p",
        USER,
        features=[Field("country", "string", classification="pii"), Field("age", "int64")],
    )
    store = FeatureStore.init(tmp_path / "repo")
    with pytest.raises(DefinitionError, match="purpose"):
        store.apply([USER, g, FeatureView("v", [g])])
    store.apply([USER, g, FeatureView("v", [g[["age"]]])])  # no pii selected: fine
    store.apply([FeatureView("w", [g], purpose="fraud scoring needs the home country")])


def test_licence_gate_refuses_disallowed_use_and_propagates(tmp_path: Path) -> None:
    store = FeatureStore.init(tmp_path / "repo")
    raw = store.repo / "raw.parquet"
    pq.write_table(batch([1.0, 2.0]), raw)
    base = FeatureGroup(
        "base",
        USER,
        features=[Field("amount", "float64")],
        source=FileSource(str(raw), licenses=("cc-by-nc-4.0",)),
    )
    derived = FeatureGroup(
        "derived",
        USER,
        features=[Field("double", "float64")],
        source=GroupSource("base"),
        transform=SQLTransform("SELECT user_id, event_timestamp, amount * 2 AS double FROM source"),
    )
    commercial = FeatureView("c", [derived], use="commercial")
    research = FeatureView("r", [derived], use="research")
    undeclared = FeatureView("u", [derived])
    store.apply([USER, base, derived, commercial, research, undeclared])
    store.run_pipeline("base", start=T0, end=T0 + timedelta(days=1))
    store.run_pipeline(derived, start=T0, end=T0 + timedelta(days=1))
    entities = pa.table({"user_id": [0, 1], "event_timestamp": [T0, T0]})
    with pytest.raises(LicenseError, match=r"cc-by-nc-4\.0.*commercial"):
        store.training_data("c", entities)
    with pytest.raises(LicenseError, match="declares no use"):
        store.training_data("u", entities)
    assert store.training_data("r", entities).to_arrow().column("double").to_pylist() == [2.0, 4.0]
    assert store.training_datasets("c") == []


def test_unknown_licence_needs_a_declaration(tmp_path: Path) -> None:
    store = FeatureStore.init(tmp_path / "repo")
    g = FeatureGroup("g", USER, features=[Field("amount", "float64")], licenses=["acme-data-1"])
    store.apply([USER, g, FeatureView("v", [g], use="commercial")])
    store.ingest("g", batch([1.0]))
    entities = pa.table({"user_id": [0], "event_timestamp": [T0]})
    with pytest.raises(LicenseError, match="does not describe"):
        store.training_data("v", entities)
    cfg = store.repo / "featureledger.yaml"
    cfg.write_text(
        cfg.read_text().replace("licenses: {}", "licenses:\n  acme-data-1: [commercial]")
    )
    assert FeatureStore(store.repo).training_data("v", entities).record.rows == 1
