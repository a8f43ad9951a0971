"""The Daft engine on a local Ray cluster over tables in S3 (a moto_server process), the
workers using their own credentials (the cluster's environment; the engine's storage
options carry none).

Everything Daft and Ray do runs in the engine's child process (`RayEngine`: its driver and
its cluster); this process, like the store's driver, only commits (delta-rs) and compares
with DuckDB. Ingests and upserts whose files the Ray workers wrote into S3 give DuckDB's
versions (content hashes and rows); the join, latest rows, diff and a statistics scan of
the S3 Parquet files read by the workers equal DuckDB's on the same snapshots.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from featureledger.offline import DeltaGroupTable, DuckDBEngine, StatsColumn
from featureledger.offline.delta import group_table_uri
from featureledger.storage import Storage, open_storage
from offline.ray_engine import RayEngine

from .conftest import CREDENTIALS, REGION, make_bucket, s3_options
from .test_delta_s3 import STATS, ingest, probe, rows

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


@pytest.fixture(scope="module")
def bucket_uri(s3_endpoint: str) -> str:
    return f"s3://{make_bucket(s3_endpoint)}/repo"


@pytest.fixture(scope="module")
def on_ray(s3_endpoint: str, bucket_uri: str) -> Iterator[RayEngine]:
    """A Daft engine on its own local Ray cluster, in a child process whose environment
    (and so every Ray worker's) holds moto's credentials; stopped at the end, also when a
    test fails."""
    env = {
        "AWS_ACCESS_KEY_ID": CREDENTIALS["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
    }
    engine = RayEngine(
        env=env, storage=(bucket_uri, {"endpoint_url": s3_endpoint, "region": REGION})
    )
    try:
        yield engine
    finally:
        engine.stop()


def _sorted(table: pa.Table) -> list[dict[str, object]]:
    keys = [(c, "ascending") for c in STATS.unique_key]
    return table.sort_by(keys).to_pylist()


def test_ray_workers_write_and_read_s3_tables_as_duckdb_does(
    on_ray: RayEngine, s3_endpoint: str, bucket_uri: str
) -> None:
    storage: Storage = open_storage(bucket_uri, s3_options(s3_endpoint))
    duck = DuckDBEngine(storage=storage)
    table = DeltaGroupTable(group_table_uri(storage, "stats", 1), storage)
    twin = DeltaGroupTable(group_table_uri(storage, "twin", 1), storage)
    table.create(STATS.arrow_schema, "test")
    twin.create(STATS.arrow_schema, "test")
    versions = []
    for batch, mode in [
        (rows([1, 2, 3], 0, 0, 10), "append"),
        (rows([3, 4], 0, 5, 20), "upsert"),  # replaces user 3's row: a file is rewritten
        (rows([2, 4], 0, 1, 30), "upsert"),  # older than user 4's stored row: only 2 wins
    ]:
        # dedupe, collision lookup and the files: on the Ray workers; the commit: here
        v = ingest(table, on_ray, batch, mode)  # type: ignore[arg-type]
        w = ingest(twin, duck, batch, mode)  # type: ignore[arg-type]
        assert v == w
        assert table.commit(v).content == twin.commit(w).content
        assert _sorted(table.read(v)) == _sorted(twin.read(w))
        versions.append(v)
    v1, v2 = versions[0], versions[-1]
    files, schema = table.files(v2), table.schema(v2)
    assert all(f.startswith("s3://") for f in files)
    entities, source = probe(files, schema)
    got = on_ray.pit_join(entities, "t", [source]).read_all()
    assert got.column("clicks").to_pylist() == [20, 20, None, 10]
    assert got.to_pylist() == duck.pit_join(entities, "t", [source]).read_all().to_pylist()

    cols = ["user_id", "event_timestamp", "clicks"]
    latest = on_ray.latest_rows(files, schema, ["user_id"], "event_timestamp", cols).read_all()
    want = duck.latest_rows(files, schema, ["user_id"], "event_timestamp", cols).read_all()
    assert latest.to_pylist() == want.sort_by("user_id").to_pylist()

    old, new = (table.files(v1), schema), (files, schema)
    got_diff = on_ray.diff(old, new, STATS.unique_key)
    want_diff = duck.diff(old, new, STATS.unique_key)
    for kind in ("added", "removed", "changed", "unchanged", "changed_by_column", "examples"):
        assert got_diff[kind] == want_diff[kind], kind

    # a dataset of S3 Parquet files, scanned by the workers themselves; DuckDB measures
    # the same rows read here
    asked = [StatsColumn("clicks", "numeric", probs=(0.0, 0.5, 1.0), edge_probs=(0.0, 0.5, 1.0))]
    stats = on_ray.run("s3_dataset_stats", files, schema, asked, 3)
    want_stats = duck.column_stats(table.read(v2), asked, top_k=3)
    assert stats.rows == want_stats.rows > 0
    got_clicks, want_clicks = stats.columns["clicks"], want_stats.columns["clicks"]
    assert got_clicks.quantiles == want_clicks.quantiles
    assert dict(got_clicks.bins) == dict(want_clicks.bins)
