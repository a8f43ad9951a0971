"""Commits whose data files an engine's workers wrote (`FileWriter`: Daft): the same
batches written through the project's writer with that engine and with DuckDB give, at
every version, the same rows, the same content hash (the incremental one a commit
records, and the one recomputed from the stored files), and the same outcome counts;
every file the workers wrote is sorted by the unique key (the DuckDB ``merge`` plan reads
files as sorted runs), stores microsecond timestamps, and carries Delta statistics that
bound its rows."""

from __future__ import annotations

import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger.definitions import Entity, FeatureGroup, Field
from featureledger.errors import KeyConflictError
from featureledger.hashing import ContentHash
from featureledger.offline import DeltaGroupTable, OfflineEngine
from featureledger.offline.duckdb import DuckDBEngine
from featureledger.versioning.writer import rebuild_content, write_batch

BASE = datetime(2025, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
USER = Entity("user", join_keys=["user_id"])
FG = FeatureGroup(
    "clicks",
    USER,
    features=[Field("amount", "float64"), Field("tier", "string")],
    event_time="et",
    created_time="ct",
)

# (user, event second, created second, amount): few keys and instants, so batches restate
# stored rows (same key and event time) with older, equal and newer created times
ROW = st.tuples(
    st.integers(0, 4), st.integers(0, 6), st.integers(0, 3), st.none() | st.floats(-1e6, 1e6)
)
STEP = st.tuples(
    st.sampled_from(["upsert", "upsert", "upsert", "append", "overwrite"]),
    st.lists(ROW, min_size=1, max_size=12),
)


def _batch(rows: list[tuple[int, int, int, float | None]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "user_id": k,
                "et": BASE + e * SECOND,
                "ct": BASE + c * SECOND,
                "amount": x,
                "tier": None if x is None else f"t{int(x) % 3}",
            }
            for k, e, c, x in rows
        ],
        FG.arrow_schema,
    )


class _Side:
    """One table and the content hash its writer's outcomes add up to."""

    def __init__(self, root: Path, engine: OfflineEngine) -> None:
        self.engine = engine
        self.table = DeltaGroupTable(root / f"t-{uuid.uuid4().hex[:8]}")
        self.version = self.table.create(FG.arrow_schema, "create")
        self.content = ContentHash()

    def write(self, batch: pa.Table, mode: str) -> Any:
        try:
            out = write_batch(
                self.table,
                self.engine,
                FG,
                batch,
                mode,  # type: ignore[arg-type]
                parent_version=self.version,
                parent_content=self.content,
                run_id="r",
                where="test",
            )
        except KeyConflictError as exc:
            return ("conflict", exc.args)
        if out.version is not None:
            self.version = out.version
            # what the store records (`DataService.commit_batch`)
            self.content = self.content + out.added - out.removed
        return (out.operation, out.added, out.removed, out.unchanged, out.superseded)

    def rows(self) -> list[dict[str, Any]]:
        table = self.table.read(self.version)
        return table.sort_by([(c, "ascending") for c in FG.unique_key]).to_pylist()


def _check_files(table: DeltaGroupTable, version: int) -> None:
    """Every file of ``version``: sorted by the unique key, microsecond timestamps, and
    Delta statistics (row count, event-time bounds) that hold for its rows."""
    log: dict[str, dict[str, Any]] = {}
    for v in range(version + 1):
        text = (table.path / "_delta_log" / f"{v:020d}.json").read_text()
        for line in text.split("\n"):
            if line.strip() and "add" in json.loads(line):
                add = json.loads(line)["add"]
                log[add["path"]] = json.loads(add["stats"])
    for uri in table.files(version):
        stored = pq.read_table(uri)
        assert stored.schema.field("et").type == pa.timestamp("us", tz="UTC")
        keys = [(c, "ascending") for c in FG.unique_key]
        assert stored.equals(stored.sort_by(keys)), f"{uri} is not sorted by the unique key"
        stats = log[Path(uri).name]
        assert stats["numRecords"] == stored.num_rows
        lo, hi = pc.min_max(stored.column("et")).values()
        # Delta truncates timestamp statistics to milliseconds
        assert stats["minValues"]["et"] <= lo.as_py().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        assert stats["maxValues"]["et"][:23] == hi.as_py().strftime("%Y-%m-%dT%H:%M:%S.%f")[:23]


@pytest.mark.notimpl(["duckdb"], raises=AssertionError, reason="DuckDB writes on the driver")
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=4))
def test_worker_written_versions_equal_duckdbs(
    engine: OfflineEngine, steps: list[tuple[str, list[tuple[int, int, int, float | None]]]]
) -> None:
    # first: an engine without worker-written files fails at once, before shrinking
    assert hasattr(engine, "write_files") and hasattr(engine, "files_holding")
    with tempfile.TemporaryDirectory() as root:
        duck, other = _Side(Path(root), DuckDBEngine()), _Side(Path(root), engine)
        for mode, rows in steps:
            batch = _batch(rows)
            assert other.write(batch, mode) == duck.write(batch, mode)
            assert other.version == duck.version
            assert other.content == duck.content
            assert rebuild_content(other.table, other.version) == other.content
            assert other.rows() == duck.rows()
            _check_files(other.table, other.version)
