"""A repository configured with `offline.engine: daft` (native runner): training data
through the store equals the DuckDB repository's, row for row and hash for hash, and with
``output=`` the workers write a folder of part files that reads back in entity order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field, content_hash
from featureledger.errors import StorageError

TS = "event_timestamp"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
MERCHANT = Entity("merchant", join_keys=[Field("merchant_id", "string")])


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def repo(root: Path, engine: str) -> FeatureStore:
    store = FeatureStore.init(root)
    (root / "featureledger.yaml").write_text(
        (root / "featureledger.yaml").read_text().replace("engine: duckdb", f"engine: {engine}")
    )
    store = FeatureStore(root)
    assert store.engine.name == engine
    u = FeatureGroup("u", USER, [Field("x", "float64")], ttl=timedelta(seconds=20))
    m = FeatureGroup("m", MERCHANT, [Field("y", "string")])
    store.apply([u, m, FeatureView("v", [u, m])])
    store.ingest(
        "u", pa.table({"user_id": [1, 1, 2], TS: [at(0), at(10), at(5)], "x": [1.0, 2.0, None]})
    )
    store.ingest("u", pa.table({"user_id": [1], TS: [at(10)], "x": [3.0]}))  # a merge
    store.ingest("m", pa.table({"merchant_id": ["a", "b"], TS: [at(3), at(30)], "y": ["p", "q"]}))
    return store


def test_training_data_on_daft_equals_duckdbs(tmp_path: Path) -> None:
    entities = pa.Table.from_pylist(
        [
            {"user_id": u, "merchant_id": m, TS: at(t)}
            for u, m, t in [(1, "a", 10), (2, "b", 29), (1, "b", 31), (3, "zz", 100), (2, "a", 2)]
        ]
    )
    duck_store = repo(tmp_path / "duck", "duckdb")
    duck = duck_store.training_data("v", entities)
    on_daft = repo(tmp_path / "daft", "daft")
    # ingests whose files the workers wrote record DuckDB's versions: rows and content
    # hashes (the second ingest into "u" replaces a stored row), and each file's checksum
    for group in ("u", "m"):
        mine, theirs = on_daft.versions(group), duck_store.versions(group)
        assert [(v.version, v.operation, v.rows, v.rows_added, v.rows_removed, v.content)
                for v in mine] == [
            (v.version, v.operation, v.rows, v.rows_added, v.rows_removed, v.content)
            for v in theirs
        ]  # fmt: skip
        reports = on_daft.verify(f"feature_group/{group}@v1")
        assert all(r.ok for r in reports) and reports[-1].checked_files, reports
    held = on_daft.training_data("v", entities)
    assert held.to_arrow().equals(duck.to_arrow())
    assert held.record.content == duck.record.content == content_hash(duck.to_arrow())
    assert duck.to_arrow().column("x").to_pylist() == [3.0, None, None, None, None]
    out = tmp_path / "exports" / "train"
    written = on_daft.training_data("v", entities, output=out)
    assert out.is_dir() and list(out.glob("*.parquet"))
    assert written.record.content == duck.record.content
    assert written.to_arrow().equals(duck.to_arrow())
    # a folder already there is refused, and nothing is added to it
    before = sorted(out.iterdir())
    with pytest.raises(StorageError, match="exists"):
        on_daft.training_data("v", entities, output=out)
    assert sorted(out.iterdir()) == before


def test_ingest_after_a_schema_change_on_daft_equals_duckdbs(tmp_path: Path) -> None:
    # a widened and an added column: the workers write into the table's current schema
    # (the added column NULL where a batch lacks it) and rewrite files of the old one
    contents = {}
    for engine in ("duckdb", "daft"):
        store = FeatureStore.init(tmp_path / engine)
        config = tmp_path / engine / "featureledger.yaml"
        config.write_text(config.read_text().replace("engine: duckdb", f"engine: {engine}"))
        store = FeatureStore(tmp_path / engine)
        store.apply([USER, FeatureGroup("g", USER, [Field("x", "int32")])])
        first = pa.table({"user_id": [1, 2], TS: [at(0)] * 2, "x": pa.array([1, 2], pa.int32())})
        store.ingest("g", first)
        store.apply([USER, FeatureGroup("g", USER, [Field("x", "int64"), Field("y", "string")])])
        store.ingest(
            "g", pa.table({"user_id": [1, 3], TS: [at(0)] * 2, "x": [5, 6], "y": ["a", "b"]})
        )
        store.ingest("g", pa.table({"user_id": [4], TS: [at(0)], "x": [7]}))
        contents[engine] = [(v.version, v.content) for v in store.versions("g")]
        assert store.read("g").sort_by("user_id").to_pydict() == {
            "user_id": [1, 2, 3, 4],
            TS: [at(0)] * 4,
            "x": [5, 2, 6, 7],
            "y": ["a", None, "b", None],
        }
        assert all(r.ok for r in store.verify("feature_group/g@v1"))
    assert contents["daft"] == contents["duckdb"]


def test_files_that_do_not_hold_the_batch_are_never_committed(tmp_path: Path) -> None:
    # workers whose files lack a row (say, another featureledger version on the cluster):
    # the per-file hashes disagree with the change the driver computed, so no commit
    from featureledger.hashing import ContentHash
    from featureledger.offline import DeltaGroupTable
    from featureledger.offline.daft import DaftEngine
    from featureledger.versioning.writer import write_batch

    class Lossy(DaftEngine):
        def write_files(self, table_uri: str, schema: pa.Schema, *args: Any) -> Any:
            sort_by, rows, *rest = args
            return super().write_files(table_uri, schema, sort_by, rows.slice(1), *rest)

    group = FeatureGroup("u", USER, [Field("x", "float64")])
    table = DeltaGroupTable(tmp_path / "u")
    table.create(group.arrow_schema, "create")
    batch = pa.table({"user_id": [1, 2], TS: [at(0), at(1)], "x": [1.0, 2.0]})
    with pytest.raises(StorageError, match="nothing was committed"):
        write_batch(
            table,
            Lossy(),
            group,
            batch.cast(group.arrow_schema),
            "upsert",
            parent_version=0,
            parent_content=ContentHash(),
            run_id="r",
            where="test",
        )
    assert table.latest_version() == 0 and table.files(0) == []
