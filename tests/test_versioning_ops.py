"""Diffs, rollback, integrity checks, pointer files, vacuum and the audit chain."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field, content_hash
from featureledger.errors import DataError, IntegrityError, NotFoundError

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
GROUP = FeatureGroup(
    "g",
    USER,
    features=[Field("x", "float64"), Field("s", "string")],
    created_time="created_timestamp",
    ttl=timedelta(days=1),
)
VIEW = FeatureView("v", [GROUP])


def rows(ids: list[int], hours: list[int], xs: list[float | None], created: int = 0) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(ids, pa.int64()),
            "event_timestamp": [T0 + timedelta(hours=h) for h in hours],
            "created_timestamp": [T0 + timedelta(hours=created)] * len(ids),
            "x": pa.array(xs, pa.float64()),
            "s": [f"s{i}" for i in ids],
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    s.apply([USER, GROUP, VIEW])
    s.ingest("g", rows([1, 2, 3], [0, 0, 0], [1.0, 2.0, 3.0]))  # 1
    s.ingest("g", rows([1, 4], [0, 1], [10.0, 4.0], created=1))  # 2
    return s


def test_diff_counts_added_removed_changed_rows_per_column(store: FeatureStore) -> None:
    d = store.diff("g", 1, 2)
    assert (d.added, d.removed, d.changed, d.unchanged) == (1, 0, 1, 2)
    assert d.changed_by_column == {"created_timestamp": 1, "x": 1, "s": 0}
    assert d.examples["added"] == [{"user_id": 4, "event_timestamp": T0 + timedelta(hours=1)}]
    assert d.examples["changed"][0]["user_id"] == 1
    assert (d.rows_old, d.rows_new) == (3, 4)
    assert d.stats_old["x"].max == 3.0 and d.stats_new["x"].max == 10.0
    assert store.diff("g", 2, 2).identical
    back = store.diff("g", 2, 1)
    assert (back.added, back.removed) == (0, 1)


def test_diff_reports_schema_changes(store: FeatureStore) -> None:
    grown = FeatureGroup(
        "g",
        USER,
        features=[*GROUP.feature_fields, Field("y", "int64")],
        created_time="created_timestamp",
        ttl=timedelta(days=1),
    )
    store.apply([grown])
    d = store.diff("g", 2, 3)
    assert d.columns_added == ["y"]
    assert d.added == d.removed == d.changed == 0


def test_rollback_restores_exact_content_and_keeps_history(store: FeatureStore) -> None:
    v1 = store.versions("g")[1]
    record = store.rollback("g", to=1, reason="bad restatement")
    assert record.version == 3 and record.operation == "rollback"
    assert record.content == v1.content
    assert content_hash(store.read("g")) == v1.content
    assert "bad restatement" in record.note
    assert store.read("g", version=2).num_rows == 4  # history kept
    # ingesting after a rollback works and stays consistent
    after = store.ingest("g", rows([9], [5], [9.0]))
    assert content_hash(store.read("g")) == after.content
    assert any(e.action == "rollback" for e in store.audit_log("feature_group/g"))


def test_rollback_across_an_added_column_keeps_the_current_schema(store: FeatureStore) -> None:
    grown = FeatureGroup(
        "g",
        USER,
        features=[*GROUP.feature_fields, Field("y", "int64")],
        created_time="created_timestamp",
        ttl=timedelta(days=1),
    )
    store.apply([grown])
    record = store.rollback("g", to=1)
    assert "y" in store.read("g").column_names
    assert record.content == store.versions("g")[1].content


def test_tampered_file_is_refused_on_read_and_reported_by_verify(store: FeatureStore) -> None:
    table = store._svc.tables.table("g", 1)
    victim = Path(table.files(2)[0])
    data = pq.read_table(victim)
    x = data.column("x").to_pylist()
    x[0] = 999.0
    pq.write_table(data.set_column(data.schema.get_field_index("x"), "x", pa.array(x)), victim)
    with pytest.raises(IntegrityError, match=r"SHA-256|size"):
        store.read("g", version=2)
    with pytest.raises(IntegrityError):
        store.training_data("v", pa.table({"user_id": [1], "event_timestamp": [T0]}))
    report = store.verify("feature_group/g@v1#2")[0]
    assert not report.ok
    assert report.actual_hash != report.expected_hash or any("cannot" in p for p in report.problems)
    assert store.verify("feature_group/g@v1#0")[0].ok


def test_verify_all_and_training_dataset_rebuild(store: FeatureStore) -> None:
    assert all(r.ok for r in store.verify())
    td = store.training_data("v", pa.table({"user_id": [1, 2], "event_timestamp": [T0, T0]}))
    report = store.verify(str(td.identity))[0]
    assert report.ok and report.actual_hash == str(td.record.content)


def test_pin_and_checkout_round_trip_and_detect_mismatch(
    store: FeatureStore, tmp_path: Path
) -> None:
    pointer = store.pin("feature_group/g@v1#1", tmp_path / "g")
    assert pointer.name == "g.fl.yaml"
    out = tmp_path / "g.parquet"
    report = store.checkout(pointer, out)
    assert report.ok
    assert content_hash(pq.read_table(out)) == store.versions("g")[1].content

    text = pointer.read_text().replace(
        str(store.versions("g")[1].content), str(store.versions("g")[2].content)
    )
    forged = tmp_path / "forged.fl.yaml"
    forged.write_text(text)
    with pytest.raises(IntegrityError, match="nothing was written"):
        store.checkout(forged, tmp_path / "f.parquet")
    assert not (tmp_path / "f.parquet").exists()

    td = store.training_data("v", pa.table({"user_id": [1, 4], "event_timestamp": [T0, T0]}))
    tp = store.pin(str(td.identity), tmp_path / "train.fl.yaml")
    store.checkout(tp, tmp_path / "train.parquet")
    assert pq.read_table(tmp_path / "train.parquet").equals(td.to_arrow())

    bad = tmp_path / "bad.fl.yaml"
    bad.write_text("hello: world\n")
    with pytest.raises(DataError, match="not a featureledger pointer"):
        store.checkout(bad, tmp_path / "x.parquet")


def test_vacuum_keeps_pinned_and_latest_versions(store: FeatureStore) -> None:
    td = store.training_data(
        "v", pa.table({"user_id": [1], "event_timestamp": [T0]}), versions={"g": 1}
    )
    store.ingest("g", rows([1, 2, 3], [0, 0, 0], [5.0, 6.0, 7.0]), mode="overwrite")  # 3
    planned = store.vacuum(older_than=timedelta(0), dry_run=True)
    assert planned["feature_group/g@v1"]  # version 2's rewritten file is deletable
    assert store.read("g", version=2).num_rows == 4  # dry run deleted nothing
    store.vacuum(older_than=timedelta(0), dry_run=False)
    assert store.read("g", version=1).num_rows == 3  # pinned by the training dataset
    assert store.read("g").num_rows == 3  # latest
    with pytest.raises(IntegrityError, match="missing"):
        store.read("g", version=2)
    assert store.verify(str(td.identity))[0].ok


def test_audit_chain_detects_edits_and_deletions(store: FeatureStore) -> None:
    assert store.audit_verify() == []
    db = store.repo / ".featureledger" / "registry.db"
    con = sqlite3.connect(db)
    con.execute("UPDATE fl_audit SET user_name = 'mallory' WHERE seq = 2")
    con.commit()
    problems = store.audit_verify()
    assert any("entry 2" in p and "edited" in p for p in problems)
    con.execute(
        "UPDATE fl_audit SET user_name = (SELECT user_name FROM fl_audit WHERE seq = 1) "
        "WHERE seq = 2"
    )
    con.execute("DELETE FROM fl_audit WHERE seq = 3")
    con.commit()
    con.close()
    problems = store.audit_verify()
    assert any("missing" in p for p in problems)


def test_view_definition_rollback_registers_the_old_spec_as_newest(store: FeatureStore) -> None:
    grown = FeatureGroup(
        "g",
        USER,
        features=[*GROUP.feature_fields, Field("y", "int64")],
        created_time="created_timestamp",
        ttl=timedelta(days=1),
    )
    store.apply([grown, FeatureView("v", [grown])])  # v 1.1.0 adds y
    assert "y" in store.get_feature_view("v").sources[0].features
    record = store.rollback_view("v", to="1.0.0", reason="y leaks the label")
    assert record.semver == "1.2.0"
    assert store.get_feature_view("v").sources[0].features == ("x", "s")
    td = store.training_data("v", pa.table({"user_id": [1], "event_timestamp": [T0]}))
    assert "y" not in td.to_arrow().column_names
    assert any(e.action == "rollback" for e in store.audit_log("feature_view/v"))
    with pytest.raises(NotFoundError):
        store.rollback_view("v", to="9.9.9")
