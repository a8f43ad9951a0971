"""End to end on a repository whose tables, training sets, model artifacts and rejected
batches live in S3 (a real moto_server): every store operation that touches stored data.
Only the registry, pointer files and the online store stay on local disk."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field, content_hash
from featureledger.config import RepoConfig
from featureledger.contracts import Contract, Range
from featureledger.errors import ContractViolation, IntegrityError
from featureledger.storage import open_storage
from featureledger.transforms.model_dependent import StandardScaler

from .conftest import make_bucket, make_s3_repo, s3_options

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
GROUP = FeatureGroup(
    "g",
    USER,
    features=[Field("x", "float64"), Field("s", "string")],
    created_time="created_timestamp",
    ttl=timedelta(days=1),
    online=True,
)
VIEW = FeatureView("v", [GROUP])


def rows(ids: list[int], hours: list[int], xs: list[float], created: int = 0) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(ids, pa.int64()),
            "event_timestamp": [T0 + timedelta(hours=h) for h in hours],
            "created_timestamp": [T0 + timedelta(hours=created)] * len(ids),
            "x": pa.array(xs, pa.float64()),
            "s": [f"s{i}" for i in ids],
        }
    )


ENTITIES = pa.table(
    {
        "user_id": pa.array([1, 2, 4, 5], pa.int64()),
        "event_timestamp": [T0 + timedelta(hours=2)] * 4,
    }
)


@pytest.fixture
def store(tmp_path: Path, s3_endpoint: str, aws_env: None) -> FeatureStore:
    repo = tmp_path / "repo"
    bucket = make_s3_repo(repo, s3_endpoint)
    s = FeatureStore(repo)
    s.apply([USER, GROUP, VIEW])
    s.ingest("g", rows([1, 2, 3], [0, 0, 0], [1.0, 2.0, 3.0]))  # 1
    s.ingest("g", rows([1, 4], [0, 1], [10.0, 4.0], created=1))  # 2
    assert s.storage.root == f"s3://{bucket}/team/offline"
    return s


def no_local_data(store: FeatureStore) -> None:
    """Nothing the store keeps in the bucket was written to local disk instead."""
    state = store.repo / ".featureledger"
    assert not list(state.glob("**/_delta_log"))
    assert not list(store.repo.glob("**/*.parquet"))
    assert not (store.repo / "s3:").exists() and not list(Path.cwd().glob("s3:"))


def test_reads_time_travel_diff_and_rollback(store: FeatureStore) -> None:
    assert store.read("g", version=1).num_rows == 3
    assert store.read("g").num_rows == 4
    when = store.versions("g")[1].created_at
    assert store.read("g", as_of=when).num_rows == 3
    assert store.read("g", columns=["x"]).column_names == ["x"]
    d = store.diff("g", 1)
    assert (d.added, d.removed, d.changed, d.unchanged) == (1, 0, 1, 2)
    back = store.rollback("g", to=1, reason="bad restatement")
    assert back.version == 3 and back.content == store.versions("g")[1].content
    assert content_hash(store.read("g")) == back.content
    assert all(r.ok for r in store.verify("feature_group/g@v1"))
    no_local_data(store)


def test_compact_keeps_the_content_and_verifies(store: FeatureStore) -> None:
    for h in range(2, 6):
        store.ingest("g", rows([10 + h], [h], [float(h)]))
    before = store.versions("g")[-1]
    files_before = len(store._svc.tables.table("g", 1).files(before.version))
    compacted = store.compact("g")
    assert compacted.version == before.version + 1 and compacted.operation == "compact"
    assert compacted.content == before.content == content_hash(store.read("g"))
    assert len(store._svc.tables.table("g", 1).files(compacted.version)) < files_before
    assert all(r.ok for r in store.verify(f"feature_group/g@v1#{compacted.version}"))


def test_training_data_lives_in_the_bucket_and_reproduces_from_its_pins(
    store: FeatureStore, tmp_path: Path
) -> None:
    td = store.training_data("v", ENTITIES)
    rec = td.record
    assert rec.entity_path.startswith(f"{store.storage.root}/fl-training/v/v1/entities-")
    assert store.storage.exists(rec.entity_path)
    assert td.to_arrow().column("x").to_pylist() == [10.0, 2.0, 4.0, None]
    # an output kept in the bucket too, read back lazily
    out_uri = f"{store.storage.root}/exports/train.parquet"
    kept = store.training_data("v", ENTITIES, output=out_uri)
    assert kept.record.output_path == out_uri and store.storage.exists(out_uri)
    fresh = FeatureStore(store.repo)
    again = fresh._svc.training.rows(fresh._svc.training.record(kept.identity))
    assert again.equals(td.to_arrow())
    # later writes do not change what the pins rebuild
    store.ingest("g", rows([1, 5], [1, 1], [99.0, 5.0], created=2))
    store.rollback("g", to=1)
    assert store.verify(str(td.identity))[0].ok
    pointer = store.pin(str(td.identity), tmp_path / "td.fl.yaml")
    assert pointer.exists()  # pointer files stay local, beside the training code
    assert rec.entity_path in pointer.read_text()
    report = store.checkout(pointer, tmp_path / "td.parquet")
    assert report.ok and pq.read_table(tmp_path / "td.parquet").equals(td.to_arrow())
    no_local_data_but(store, tmp_path / "td.parquet")


def no_local_data_but(store: FeatureStore, *allowed: Path) -> None:
    found = [p for p in store.repo.glob("**/*.parquet") if p not in allowed]
    assert not found and not list(store.repo.glob("**/_delta_log"))


def test_pin_and_checkout_of_a_data_version(store: FeatureStore, tmp_path: Path) -> None:
    pointer = store.pin("feature_group/g@v1#1", tmp_path / "g1.fl.yaml")
    assert "s3://" in pointer.read_text()
    report = store.checkout(pointer, tmp_path / "g1.parquet")
    assert report.ok
    assert content_hash(pq.read_table(tmp_path / "g1.parquet")) == store.versions("g")[1].content


def test_vacuum_keeps_pinned_and_latest_versions(store: FeatureStore) -> None:
    td = store.training_data("v", ENTITIES, versions={"g": 1})
    store.ingest("g", rows([1, 2, 3], [0, 0, 0], [5.0, 6.0, 7.0]), mode="overwrite")  # 3
    planned = store.vacuum(older_than=timedelta(0), dry_run=True)
    assert planned["feature_group/g@v1"]
    assert store.read("g", version=2).num_rows == 4  # a dry run deletes nothing
    deleted = store.vacuum(older_than=timedelta(0), dry_run=False)
    assert deleted == planned
    assert store.read("g", version=1).num_rows == 3  # pinned by the training dataset
    assert store.read("g").num_rows == 3  # latest
    with pytest.raises(IntegrityError, match="missing"):
        store.read("g", version=2)
    assert store.verify(str(td.identity))[0].ok


def test_materialize_and_online_reads(store: FeatureStore) -> None:
    (done,) = store.materialize()
    assert (done.group, done.version, done.rows) == ("g", 2, 4)
    online = store.get_online_features(
        "v", {"user_id": [1, 4, 7]}, now=T0 + timedelta(hours=3)
    ).to_arrow()
    assert online.column("x").to_pylist() == [10.0, 4.0, None]


def test_statistics_of_versions_and_training_sets(store: FeatureStore) -> None:
    assert store.stats("feature_group/g@v1#2")["x"].count == 4
    config = RepoConfig.load(store.repo)
    config.monitoring.stats_on_write = "off"  # so they are computed here, from the bucket
    quiet = FeatureStore(store.repo, config=config)
    out_uri = f"{store.storage.root}/exports/stats.parquet"
    td = quiet.training_data("v", ENTITIES, output=out_uri)
    assert quiet.registry.get_stats(str(td.identity)) is None
    stats = quiet.stats(str(td.identity))["x"]
    assert (stats.count, stats.nulls, stats.max) == (4, 1, 10.0)


def test_model_artifacts_and_fitted_transforms_live_in_the_bucket(
    store: FeatureStore, tmp_path: Path
) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 1000)
    folder = tmp_path / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "data-00000").write_bytes(b"numbers")
    td = store.training_data("v", ENTITIES)
    one = store.register_model("m", model, training_dataset=td)
    two = store.register_model("m", folder)
    for rec in (one, two):
        assert rec.artifact_path.startswith(f"{store.storage.root}/fl-models/{rec.artifact_hash}/")
        assert store._svc.models.files.sha256(rec.artifact_path) == rec.artifact_hash
    assert store.storage.read_bytes(one.artifact_path) == model.read_bytes()
    # a second registration of the same bytes reuses the stored copy
    assert store.register_model("m", model).artifact_path == one.artifact_path
    fitted = store.fit_transforms("m_prep", td, [StandardScaler(["x"])])
    assert fitted.artifact_path.startswith(f"{store.storage.root}/fl-models/")
    loaded = store.load_transforms(str(fitted.identity))
    assert loaded.to_json() == FeatureStore(store.repo).load_transforms("model/m_prep").to_json()
    store.storage.write_bytes(fitted.artifact_path, b'{"tampered": true}')
    with pytest.raises(IntegrityError, match="do not match"):
        store.load_transforms(str(fitted.identity))
    assert not list((store.repo / ".featureledger").glob("models/**"))


def test_a_rejected_batch_is_kept_in_the_bucket(
    tmp_path: Path, s3_endpoint: str, aws_env: None
) -> None:
    repo = tmp_path / "repo"
    make_s3_repo(repo, s3_endpoint)
    store = FeatureStore(repo)
    base = FeatureGroup("c", USER, features=[Field("amount", "float64")], policy="strict")
    group = dataclasses.replace(
        base, contract=Contract.from_feature_group(base, rules=[Range("amount", min=0.0)])
    )
    store.apply([USER, group])
    bad = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "event_timestamp": [T0, T0],
            "amount": [5.0, -3.0],
        }
    )
    with pytest.raises(ContractViolation, match="kept at s3://"):
        store.ingest("c", bad)
    (rejected,) = [v for v in store.validations("c") if v.status == "rejected"]
    assert rejected.rejected_path.startswith(f"{store.storage.root}/fl-rejected/c/v1/")
    kept = store._svc.data.files.read_parquet(rejected.rejected_path)
    assert kept.column("amount").to_pylist() == [5.0, -3.0]
    no_local_data(store)


def test_training_path_in_a_bucket_of_its_own(
    tmp_path: Path, s3_endpoint: str, aws_env: None
) -> None:
    """``training_path: s3://...`` is used as it is, also with tables on local disk."""
    other = make_bucket(s3_endpoint)
    repo = tmp_path / "repo"
    FeatureStore.init(repo).close()
    config = yaml.safe_load((repo / "featureledger.yaml").read_text())
    config["training_path"] = f"s3://{other}/sets"
    config["storage"]["endpoint"] = s3_endpoint
    (repo / "featureledger.yaml").write_text(yaml.safe_dump(config))
    store = FeatureStore(repo)
    store.apply([USER, GROUP, VIEW])
    store.ingest("g", rows([1, 2], [0, 0], [1.0, 2.0]))
    td = store.training_data("v", ENTITIES)
    assert td.record.entity_path.startswith(f"s3://{other}/sets/v/v1/")
    bucket = open_storage(f"s3://{other}", s3_options(s3_endpoint))
    assert bucket.exists(td.record.entity_path)
    assert store.verify(str(td.identity))[0].ok
    assert not (repo / "s3:").exists() and not (repo / ".featureledger" / "training").exists()
