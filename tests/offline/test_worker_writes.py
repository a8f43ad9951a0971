"""Training data written by an engine's workers (`WorkerWriter.pit_join_to`): the files
hold exactly the join's rows, and the content hash, computed per partition on the workers
and combined, equals DuckDB's hash of the same join (the hash ignores order and layout)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featureledger.definitions import Entity, FeatureGroup, Field
from featureledger.hashing import content_hash
from featureledger.offline import ROW_COLUMN, OfflineEngine, PitSource
from featureledger.offline.duckdb import DuckDBEngine

from .conftest import write_group

BASE = datetime(2025, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
TS = pa.timestamp("us", tz="UTC")
USER = Entity("user", join_keys=["user_id"])

FG = FeatureGroup(
    "spend",
    USER,
    features=[Field("amount", "float64"), Field("tier", "string")],
    event_time="et",
    ttl=timedelta(seconds=5),
)
PROFILE = FeatureGroup("profile", USER, features=[Field("age", "int64")], event_time=None)


def _source(fg: FeatureGroup, files: list[str], features: list[str]) -> PitSource:
    ttl = None if fg.ttl is None else fg.ttl // timedelta(microseconds=1)
    return PitSource(
        files, fg.arrow_schema, fg.primary_key, fg.primary_key, fg.event_time, ttl,
        [(f, f) for f in features],
    )  # fmt: skip


@pytest.mark.notimpl(["duckdb"], raises=AttributeError, reason="writes joins from the driver")
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 20), st.none() | st.floats(allow_nan=False)),
        max_size=40,
    ),
    entities=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 25)), min_size=1, max_size=30),
)
def test_written_join_holds_the_joins_rows_and_duckdbs_hash(
    engine: OfflineEngine,
    rows: list[tuple[int, int, float | None]],
    entities: list[tuple[int, int]],
) -> None:
    # first: an engine without it fails at once, before hypothesis shrinks written tables
    pit_join_to = engine.pit_join_to  # type: ignore[attr-defined]
    spend = [
        {"user_id": k, "et": BASE + s * SECOND, "amount": v, "tier": f"t{k % 3}"}
        for k, s, v in rows
    ]
    ages = [{"user_id": k, "age": 20 + k} for k in range(0, 6, 2)]
    frame = pa.table(
        {
            "user_id": pa.array([k for k, _ in entities], pa.int64()),
            "t": pa.array([BASE + s * SECOND for _, s in entities], TS),
            ROW_COLUMN: pa.array(range(len(entities)), pa.int64()),
        }
    )
    duck = DuckDBEngine()
    with tempfile.TemporaryDirectory() as root:
        snaps = write_group(duck, Path(root), FG, [pa.Table.from_pylist(spend, FG.arrow_schema)])
        profile = write_group(
            duck, Path(root), PROFILE, [pa.Table.from_pylist(ages, PROFILE.arrow_schema)]
        )
        sources = [
            _source(FG, snaps[-1].files, ["amount", "tier"]),
            _source(PROFILE, profile[-1].files, ["age"]),
        ]
        expected = duck.pit_join(frame, "t", sources).read_all()
        out = str(Path(root) / "training")
        files, digest = pit_join_to(frame, "t", sources, out)
        assert digest == content_hash(expected)
        assert all(Path(f).resolve().is_relative_to(Path(out).resolve()) for f in files)
        written = pa.concat_tables([pq.read_table(f) for f in files]) if files else None
        got: Any = (
            []
            if written is None
            else written.sort_by(ROW_COLUMN).drop_columns([ROW_COLUMN]).cast(expected.schema)
        )
        assert (got.to_pylist() if written is not None else []) == expected.to_pylist()
