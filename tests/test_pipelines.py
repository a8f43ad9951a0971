"""Feature pipelines: windowed runs, idempotence, provenance and `reproduce`."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, Field
from featureledger.definitions import FileSource, GroupSource, PythonTransform, SQLTransform
from featureledger.errors import DataError, DefinitionError

DAY = timedelta(days=1)
T0 = datetime(2025, 2, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
DAILY_SQL = """
    SELECT user_id, date_trunc('day', event_timestamp) + INTERVAL 1 DAY AS event_timestamp,
           sum(amount) AS spend, count(*) AS n
    FROM source GROUP BY ALL
"""


def daily_group(query: str = DAILY_SQL) -> FeatureGroup:
    return FeatureGroup(
        "daily",
        USER,
        features=[Field("spend", "float64"), Field("n", "int64")],
        source=FileSource("raw/txns.parquet"),
        transform=SQLTransform(query),
    )


def doubled(source: pa.Table, start: datetime, end: datetime) -> pa.Table:
    return source.select(["user_id", "event_timestamp"]).append_column(
        "spend2", pc.multiply(source.column("spend"), 2.0)
    )


def tripled(source: pa.Table, start: datetime, end: datetime) -> pa.Table:
    return source.select(["user_id", "event_timestamp"]).append_column(
        "spend2", pc.multiply(source.column("spend"), 3.0)
    )


def derived_group(fn=doubled) -> FeatureGroup:
    return FeatureGroup(
        "derived",
        USER,
        features=[Field("spend2", "float64")],
        source=GroupSource("daily"),
        transform=PythonTransform(fn),
    )


def write_raw(repo: Path, amounts: list[float]) -> None:
    (repo / "raw").mkdir(exist_ok=True)
    n = len(amounts)
    pq.write_table(
        pa.table(
            {
                "user_id": [i % 2 for i in range(n)],
                "event_timestamp": [T0 + timedelta(hours=10 * i) for i in range(n)],
                "amount": amounts,
            }
        ),
        repo / "raw" / "txns.parquet",
    )


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    write_raw(s.repo, [float(i) for i in range(12)])  # five days of transactions
    s.apply([USER, daily_group(), derived_group()])
    return s


def test_window_run_writes_aggregates_and_rerun_is_idempotent(store: FeatureStore) -> None:
    first = store.run_pipeline("daily", start=T0, end=T0 + 2 * DAY)
    rows = store.read("daily").sort_by([("event_timestamp", "ascending"), ("user_id", "ascending")])
    # hours 0,10,20 (day 1) and 30,40 (day 2): users alternate 0,1,0 / 1,0
    assert rows.column("spend").to_pylist() == [2.0, 1.0, 4.0, 3.0]
    assert rows.column("n").to_pylist() == [2, 1, 1, 1]
    again = store.run_pipeline("daily", start=T0, end=T0 + 2 * DAY)
    assert again.version.version == first.version.version  # nothing changed, no version
    later = store.run_pipeline("daily", start=T0 + 2 * DAY, end=T0 + 5 * DAY)
    assert later.version.version == first.version.version + 1
    run = store.registry.run(first.run_id)
    assert run.kind == "pipeline" and run.status == "succeeded"
    assert run.inputs[0].startswith("file:") and "@sha256:" in run.inputs[0]
    assert run.code_hash == daily_group().transform.code_hash
    assert run.params["output_hash"].startswith("flh1:")


def test_group_source_with_python_transform_pins_its_input(store: FeatureStore) -> None:
    store.run_pipeline("daily", start=T0, end=T0 + 5 * DAY)
    out = store.run_pipeline(derived_group(), start=T0, end=T0 + 5 * DAY)
    assert out.inputs == [str(store.versions("daily")[-1].identity)]
    daily = store.read("daily")
    inside = pc.less(daily.column("event_timestamp"), pa.scalar(T0 + 5 * DAY))
    spend = daily.filter(inside).column("spend").to_pylist()  # the window is half-open
    assert sorted(store.read("derived").column("spend2").to_pylist()) == sorted(
        2 * x for x in spend
    )
    env = store.registry.run(out.run_id).params["environment"]
    assert "pyarrow" in env  # packages the transformation's module imports are recorded


def test_reproduce_reports_each_factor(store: FeatureStore) -> None:
    store.run_pipeline("daily", start=T0, end=T0 + 5 * DAY)
    out = store.run_pipeline(derived_group(), start=T0, end=T0 + 5 * DAY)
    ok = store.reproduce(f"run/{out.run_id}", definitions=[derived_group()])
    assert ok.reproducible and ok.output_matches

    # code: the same group with an edited transformation
    changed = store.reproduce(f"run/{out.run_id}", definitions=[derived_group(tripled)])
    assert not changed.holds("code") and changed.holds("data")
    assert changed.output_matches is False

    # environment: the run was recorded under another numpy
    db = sqlite3.connect(store.repo / ".featureledger" / "registry.db")
    params = json.loads(
        db.execute("SELECT params FROM fl_runs WHERE id = ?", (out.run_id,)).fetchone()[0]
    )
    params["environment"]["numpy"] = "0.0.1"
    db.execute("UPDATE fl_runs SET params = ? WHERE id = ?", (json.dumps(params), out.run_id))
    db.commit()
    db.close()
    env = store.reproduce(f"run/{out.run_id}", definitions=[derived_group()])
    assert not env.holds("environment")
    assert env.differences("environment")[0][:2] == ("numpy", "0.0.1")


def test_reproduce_detects_changed_input_file(store: FeatureStore) -> None:
    run = store.run_pipeline("daily", start=T0, end=T0 + 5 * DAY)
    write_raw(store.repo, [float(i) + 1 for i in range(12)])
    report = store.reproduce(str(run.version.identity))
    assert not report.holds("data") and report.holds("code")
    assert report.output_matches is False


def test_pipeline_refuses_unapplied_code_and_bad_windows(store: FeatureStore) -> None:
    with pytest.raises(DefinitionError, match="featureledger apply"):
        store.run_pipeline(daily_group(DAILY_SQL + " HAVING count(*) > 0"), start=T0, end=T0 + DAY)
    with pytest.raises(DataError, match="empty"):
        store.run_pipeline("daily", start=T0, end=T0)
    with pytest.raises(DataError, match="time-zone aware"):
        store.run_pipeline("daily", start=datetime(2025, 1, 1), end=datetime(2025, 1, 2))
    with pytest.raises(DefinitionError, match="not loaded"):
        store.run_pipeline("derived", start=T0, end=T0 + DAY)
