"""The Daft engine (native runner) on tables in S3 (a moto_server process): it writes
through the project's writer (the data files written to S3 by Daft, one commit here), and
its joins, latest rows and diffs over the S3 snapshots equal DuckDB's."""

from __future__ import annotations

from featureledger.offline import DeltaGroupTable, DuckDBEngine
from featureledger.offline.daft import DaftEngine
from featureledger.offline.delta import group_table_uri
from featureledger.storage import Storage

from .test_delta_s3 import STATS, TS, ingest, probe, rows


def test_daft_reads_s3_snapshots_as_duckdb_does(s3_storage: Storage) -> None:
    daft_engine = DaftEngine(storage=s3_storage)
    duck = DuckDBEngine(storage=s3_storage)
    table = DeltaGroupTable(group_table_uri(s3_storage, "stats", 1), s3_storage)
    table.create(STATS.arrow_schema, "test")
    v1 = ingest(table, daft_engine, rows([1, 2, 3], 0, 0, 10), "append")  # type: ignore[arg-type]
    v2 = ingest(table, daft_engine, rows([3, 4], 0, 5, 20))  # type: ignore[arg-type]
    assert v2 == v1 + 1
    files, schema = table.files(v2), table.schema(v2)
    assert all(f.startswith("s3://") for f in files)
    entities, source = probe(files, schema)
    got = daft_engine.pit_join(entities, "t", [source]).read_all()
    want_join = duck.pit_join(entities, "t", [source]).read_all()
    # DuckDB labels the zone Etc/UTC (the store casts it back); Daft keeps the entity's
    assert got.schema.field("t").type == TS
    assert got.to_pylist() == want_join.to_pylist()
    assert got.column("clicks").to_pylist() == [20, 20, None, 10]
    cols = ["user_id", "event_timestamp", "clicks"]
    latest = daft_engine.latest_rows(files, schema, ["user_id"], "event_timestamp", cols)
    assert (
        latest.read_all().to_pylist()
        == duck.latest_rows(files, schema, ["user_id"], "event_timestamp", cols)
        .read_all()
        .sort_by("user_id")
        .to_pylist()
    )
    old, new = (table.files(v1), schema), (files, schema)
    got_diff = daft_engine.diff(old, new, STATS.unique_key)
    want = duck.diff(old, new, STATS.unique_key)
    for kind in ("added", "removed", "changed", "unchanged", "changed_by_column", "examples"):
        assert got_diff[kind] == want[kind], kind
