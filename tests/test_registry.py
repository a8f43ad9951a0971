"""The registry: the audit chain, run records and what definitions and versions keep."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from featureledger import ContentHash, Entity, FeatureGroup, FeatureStore, Field
from featureledger.errors import ConfigError, KeyConflictError, NotFoundError, SchemaMismatchError
from featureledger.registry import DataVersion, SQLRegistry
from featureledger.registry.sql import audit_table, meta_table, runs_table

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup("stats", USER, features=[Field("clicks", "int64")])


def batch(users: list[int], clicks: int = 1) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "event_timestamp": pa.array([T0] * len(users), TS),
            "clicks": pa.array([clicks] * len(users), pa.int64()),
        }
    )


@pytest.fixture
def busy(store: FeatureStore) -> FeatureStore:
    """A store with a few applies and ingests behind it."""
    store.apply([USER, STATS])
    store.ingest("stats", batch([1, 2]))
    store.ingest("stats", batch([2, 3], clicks=2))
    store.apply([FeatureGroup("stats", USER, features=[Field("clicks", "int64")], description="d")])
    return store


def runs(store: FeatureStore) -> list[sa.Row]:
    with store.registry.engine.connect() as conn:
        return list(conn.execute(runs_table.select().order_by(runs_table.c.started_at)))


# -- audit chain ------------------------------------------------------------------------------


def test_audit_entries_are_hash_chained(busy: FeatureStore) -> None:
    log = busy.registry.audit_log()
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    # version 0 (the empty table apply creates) is recorded with its own entry
    assert [e.action for e in log] == ["apply", "create", "apply", "ingest", "ingest", "apply"]
    assert log[0].prev_hash == "0" * 64
    for before, after in itertools.pairwise(log):
        assert after.prev_hash == before.hash
    assert len({e.hash for e in log}) == len(log)
    assert busy.registry.audit_verify() == []
    assert log[3].object == "feature_group/stats@v1#1"
    assert log[3].details["mode"] == "upsert" and log[3].details["rows"] == 2


def test_audit_log_filters_by_object(busy: FeatureStore) -> None:
    entries = busy.registry.audit_log("feature_group/stats")
    assert {e.object for e in entries} == {
        "feature_group/stats@v1",
        "feature_group/stats@v1#0",
        "feature_group/stats@v1#1",
        "feature_group/stats@v1#2",
    }
    assert busy.registry.audit_log("entity/") == busy.registry.audit_log()[:1]


def test_edited_or_deleted_audit_entries_are_detected(busy: FeatureStore) -> None:
    engine = busy.registry.engine
    with engine.begin() as conn:
        conn.execute(
            audit_table.update()
            .where(audit_table.c.seq == 3)
            .values(details='{"mode": "overwrite"}')
        )
    problems = busy.registry.audit_verify()
    assert any("entry 3" in p and "edited" in p for p in problems)
    with engine.begin() as conn:
        conn.execute(audit_table.delete().where(audit_table.c.seq == 2))
    problems = busy.registry.audit_verify()
    assert any("missing" in p for p in problems)


def test_audit_chain_survives_reopening(busy: FeatureStore) -> None:
    reopened = FeatureStore(busy.repo)
    reopened.ingest("stats", batch([9]))
    log = reopened.registry.audit_log()
    assert log[-1].prev_hash == log[-2].hash
    assert reopened.registry.audit_verify() == []


def test_audit_records_who(store: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURELEDGER_USER", "ana")
    store.apply([USER, STATS])
    monkeypatch.setenv("FEATURELEDGER_USER", "bo")
    v = store.ingest("stats", batch([1]))
    users = [(e.action, e.user) for e in store.registry.audit_log()]
    assert users == [("apply", "ana"), ("create", "ana"), ("apply", "ana"), ("ingest", "bo")]
    assert v.user == "bo"
    assert store.registry.latest_definition("feature_group", "stats").created_by == "ana"


# -- runs ---------------------------------------------------------------------------------


def test_runs_record_succeeded_failed_and_unchanged(store: FeatureStore) -> None:
    store.apply([USER, STATS])
    ok = store.ingest("stats", batch([1, 2]))
    assert store.ingest("stats", batch([1, 2])) == ok  # identical: unchanged
    with pytest.raises(KeyConflictError):
        store.ingest("stats", batch([2]), mode="append")
    recorded = runs(store)
    assert [r.status for r in recorded] == ["succeeded", "unchanged", "failed"]
    assert all(r.kind == "ingest" for r in recorded)
    succeeded, unchanged, failed = recorded
    assert succeeded.id == ok.run_id
    assert succeeded.outputs == f'["{ok.identity}"]'
    assert unchanged.outputs == f'["{ok.identity}"]'  # points at the version that holds it
    assert failed.outputs == "[]"
    assert failed.error.startswith("KeyConflictError:")
    assert all(r.ended_at is not None for r in recorded)
    run = store.registry.run(failed.id)
    assert run is not None and run.status == "failed" and run.params["mode"] == "append"
    assert run.code_hash == store.registry.run(ok.run_id).code_hash != ""
    assert run.env_hash and run.user


def test_refused_input_records_no_run(store: FeatureStore) -> None:
    store.apply([USER, STATS])
    with pytest.raises(SchemaMismatchError):
        store.ingest("stats", batch([1]).drop_columns(["clicks"]))
    assert runs(store) == []
    assert store.registry.run("no-such-run") is None
    with pytest.raises(NotFoundError):
        store.show("run/no_such_run")


def test_show_run(store: FeatureStore) -> None:
    store.apply([USER, STATS])
    v = store.ingest("stats", batch([1]))
    shown = store.show(f"run/{v.run_id}")
    assert shown["status"] == "succeeded" and shown["kind"] == "ingest"
    assert shown["outputs"] == [str(v.identity)]


# -- definitions and data versions -------------------------------------------------------------


def test_definition_records_keep_spec_reasons_and_order(busy: FeatureStore) -> None:
    records = busy.registry.definitions("feature_group", "stats")
    assert [r.semver for r in records] == ["1.0.0", "1.0.1"]
    assert records[1].reasons == ["description changed [patch]"]
    assert records[1].spec["description"] == "d"
    assert records[0].spec_hash != records[1].spec_hash
    assert FeatureGroup.from_dict(records[0].spec, 1) == STATS.__class__.from_dict(
        STATS.to_dict(), 1
    )
    assert busy.registry.latest_definition("feature_group", "stats").semver == "1.0.1"
    assert busy.registry.latest_definition("feature_group", "stats", 2) is None
    assert busy.registry.latest_definition("feature_group", "nope") is None


def test_minor_versions_order_numerically(store: FeatureStore) -> None:
    store.apply([USER, STATS])
    for i in range(11):  # 1.0.1 .. 1.0.11: 1.0.10 must not sort before 1.0.9
        store.apply(
            [FeatureGroup("stats", USER, features=[Field("clicks", "int64")], description=str(i))]
        )
    assert store.registry.latest_definition("feature_group", "stats").semver == "1.0.11"
    assert store.get_feature_group("stats").description == "10"


def test_unknown_definitions_name_the_known_ones(busy: FeatureStore) -> None:
    with pytest.raises(NotFoundError) as info:
        busy.get_feature_group("stat")
    assert "feature_group/stat is not registered" in str(info.value)
    assert "['stats']" in str(info.value) and "featureledger apply" in str(info.value)
    with pytest.raises(NotFoundError, match="@v7"):
        busy.get_feature_group("stats", 7)


def test_data_version_records_round_trip(tmp_path: Path) -> None:
    registry = SQLRegistry(f"sqlite:///{tmp_path / 'r.db'}", audit_key=b"k" * 32)
    big = ContentHash(rows=3, lane_a=2**64 - 1, lane_b=2**63 + 5)
    record = DataVersion(
        group="g",
        major=2,
        version=7,
        operation="upsert",
        rows=3,
        rows_added=2,
        rows_removed=1,
        content=big,
        schema_hash="abc",
        files={"f.parquet": {"sha256": "00"}},
        run_id="r",
        user="u",
        created_at=T0 + timedelta(microseconds=123),
        note="n",
    )
    registry.add_data_version(record)
    assert registry.data_version("g", 2, 7) == record
    assert registry.data_versions("g", 2) == [record]
    assert registry.data_versions("g", 1) == []
    with pytest.raises(sa.exc.IntegrityError):  # a version is recorded once
        registry.add_data_version(record)
    reopened = SQLRegistry(f"sqlite:///{tmp_path / 'r.db'}")
    assert reopened.data_version("g", 2, 7).content == big


def test_newer_registry_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    registry = SQLRegistry(url)
    with registry.engine.begin() as conn:
        conn.execute(
            meta_table.update().where(meta_table.c.key == "schema_version").values(value="999")
        )
    with pytest.raises(ConfigError, match="upgrade featureledger"):
        SQLRegistry(url)


def test_bad_registry_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be opened"):
        SQLRegistry("nosuchdialect://x")


def test_store_without_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="featureledger init"):
        FeatureStore(tmp_path)
    FeatureStore.init(tmp_path / "r")
    with pytest.raises(ConfigError, match="exists already"):
        FeatureStore.init(tmp_path / "r", exist_ok=False)
    (tmp_path / "r" / "featureledger.yaml").write_text("naive_timestamps: maybe\n")
    with pytest.raises(ConfigError, match="naive_timestamps"):
        FeatureStore(tmp_path / "r")
    (tmp_path / "r" / "featureledger.yaml").write_text("colour: blue\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        FeatureStore(tmp_path / "r")
