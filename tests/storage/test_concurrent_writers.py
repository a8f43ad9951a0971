"""Eight writer processes on one S3 table: Delta's conditional put orders their commits,
and each writer's content-hash update is redone from the new latest version when it
loses a race. No version may be lost or duplicated, and the hash must equal one
recomputed from the data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

from featureledger import content_hash
from featureledger.offline import DeltaGroupTable
from featureledger.offline.delta import group_table_uri
from featureledger.storage import open_storage
from featureledger.versioning.writer import rebuild_content

from .conftest import make_bucket, s3_options
from .test_delta_s3 import STATS

WRITERS = 8
BATCHES = 5
SHARED = 9999  # a key every writer restates: the newest created_time must win

WRITER = textwrap.dedent("""
    import json, sys
    from datetime import UTC, datetime, timedelta
    import pyarrow as pa
    from featureledger import Entity, FeatureGroup, Field
    from featureledger.offline import DeltaGroupTable, DuckDBEngine
    from featureledger.storage import open_storage
    from featureledger.versioning.writer import write_with_retry

    uri, options = sys.argv[1], json.loads(sys.argv[2])
    w, batches = int(sys.argv[3]), int(sys.argv[4])
    STATS = FeatureGroup(
        "stats", Entity("user", join_keys=["user_id"]),
        features=[Field("clicks", "int64"), Field("spend")], created_time="created",
    )
    T0 = datetime(2024, 1, 1, tzinfo=UTC)
    TS = pa.timestamp("us", tz="UTC")
    storage = open_storage(uri.rsplit("/", 2)[0], options)
    table = DeltaGroupTable(uri, storage)
    engine = DuckDBEngine(storage=storage)
    done = []
    for j in range(batches):
        users = [w * 100 + j, 9999]
        batch = pa.table({
            "user_id": pa.array(users, pa.int64()),
            "event_timestamp": pa.array([T0 + timedelta(hours=j)] * 2, TS),
            "created": pa.array([T0 + timedelta(seconds=w * 10 + j)] * 2, TS),
            "clicks": pa.array([w, w], pa.int64()),
            "spend": pa.array([float(u) for u in users], pa.float64()),
        }).cast(STATS.arrow_schema)
        out, parent = write_with_retry(
            table, engine, STATS, batch, "upsert", run_id=f"w{w}-{j}", where=f"writer {w}"
        )
        done.append({"version": out.version, "parent": out.parent, "attempts": out.attempts})
    print(json.dumps(done))
""")


@pytest.mark.slow
@pytest.mark.subprocess
def test_eight_writer_processes_lose_and_duplicate_no_version(
    s3_endpoint: str, tmp_path: Path
) -> None:
    options = s3_options(s3_endpoint)
    storage = open_storage(f"s3://{make_bucket(s3_endpoint)}/repo", options)
    uri = group_table_uri(storage, "stats", 1)
    table = DeltaGroupTable(uri, storage)
    table.create(STATS.arrow_schema, "create")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), uri, json.dumps(options), str(w), str(BATCHES)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "FEATURELEDGER_USER": f"writer{w}"},
        )
        for w in range(WRITERS)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.perf_counter() - start

    writes = [r for per_writer in results for r in per_writer]
    versions = sorted(r["version"] for r in writes)
    # every batch holds a key nobody else writes, so every write commits one version
    assert versions == list(range(1, WRITERS * BATCHES + 1))  # none lost, none twice
    assert all(r["version"] == r["parent"] + 1 for r in writes)
    latest = table.latest_version()
    assert latest == WRITERS * BATCHES

    # the hash chain in the log equals a recomputation from the rows, at every version
    for v in range(1, latest + 1):
        assert table.commit(v).content == rebuild_content(table, v), f"version {v}"
    stored = table.read(latest)
    assert table.commit(latest).content == content_hash(stored)

    # the rows are what any serial order of these upserts gives
    got = {(r["user_id"], r["event_timestamp"].hour): r["clicks"] for r in stored.to_pylist()}
    expected = {(w * 100 + j, j): w for w in range(WRITERS) for j in range(BATCHES)}
    expected |= {(SHARED, j): WRITERS - 1 for j in range(BATCHES)}  # newest created wins
    assert got == expected and stored.num_rows == len(expected)

    retries = sum(r["attempts"] - 1 for r in writes)
    print(
        f"\n{WRITERS} writers x {BATCHES} upserts on S3 (moto_server): {len(writes)} versions "
        f"in {elapsed:.1f} s, {retries} retries after losing a commit race"
    )
    assert isinstance(stored, pa.Table)
