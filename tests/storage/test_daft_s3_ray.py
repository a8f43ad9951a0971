"""The Daft engine on a local Ray cluster over tables in S3 (a moto_server process): the
workers read the snapshots with their own credentials (the cluster's environment; the
engine's storage options here carry none), and the join, latest rows, diff and a
statistics scan of S3 Parquet files equal DuckDB's on the same snapshots."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from featureledger.offline import ROW_COLUMN, DeltaGroupTable, DuckDBEngine, PitSource, StatsColumn
from featureledger.offline.delta import group_table_uri
from featureledger.storage import Storage, open_storage
from offline.ray_engine import RayEngine

from .conftest import CREDENTIALS, REGION, make_bucket
from .test_delta_s3 import STATS, T0, TS, ingest, rows

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


@pytest.fixture(scope="module")
def bucket_uri(s3_endpoint: str) -> str:
    return f"s3://{make_bucket(s3_endpoint)}/repo"


@pytest.fixture(scope="module")
def on_ray(s3_endpoint: str, bucket_uri: str) -> Iterator[RayEngine]:
    """A Daft engine on its own local Ray cluster whose processes hold moto's
    credentials in their environment; stopped at the end, also when a test fails."""
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


def test_ray_workers_read_s3_snapshots_as_duckdb_does(
    on_ray: RayEngine, s3_endpoint: str, bucket_uri: str
) -> None:
    storage: Storage = open_storage(
        bucket_uri, {"endpoint_url": s3_endpoint, "region": REGION, **CREDENTIALS}
    )
    duck = DuckDBEngine(storage=storage)
    table = DeltaGroupTable(group_table_uri(storage, "stats", 1), storage)
    table.create(STATS.arrow_schema, "test")
    v1 = ingest(table, duck, rows([1, 2, 3], 0, 0, 10), "append")
    v2 = ingest(table, duck, rows([3, 4], 0, 5, 20))
    files, schema = table.files(v2), table.schema(v2)
    assert all(f.startswith("s3://") for f in files)
    entities = pa.table(
        {
            "user_id": pa.array([4, 3, 9, 1], pa.int64()),
            "t": pa.array([T0] * 4, TS),
            ROW_COLUMN: pa.array(np.arange(4, dtype=np.int64)),
        }
    )
    source = PitSource(
        files, schema, ["user_id"], ["user_id"], "event_timestamp", None, [("clicks", "clicks")]
    )
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

    # a dataset of S3 Parquet files: the workers scan the files themselves
    fs = pafs.S3FileSystem(
        access_key=CREDENTIALS["access_key_id"],
        secret_key=CREDENTIALS["secret_access_key"],
        endpoint_override=s3_endpoint,
        region=REGION,
    )
    dataset = pads.dataset([f.removeprefix("s3://") for f in files], schema=schema, filesystem=fs)
    asked = [StatsColumn("clicks", "numeric", probs=(0.0, 0.5, 1.0), edge_probs=(0.0, 0.5, 1.0))]
    stats = on_ray.column_stats(dataset, asked, top_k=3)
    want_stats = duck.column_stats(dataset, asked, top_k=3)
    assert stats.rows == want_stats.rows > 0
    got_clicks, want_clicks = stats.columns["clicks"], want_stats.columns["clicks"]
    assert got_clicks.quantiles == want_clicks.quantiles
    assert dict(got_clicks.bins) == dict(want_clicks.bins)
