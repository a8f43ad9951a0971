"""The flows a new user walks through after the first ingest: serving a group that is not
online, ingesting after an add-column change, a file with several faults, training data
from groups with no data at the frame's times, and the major-version backfill (copy,
recompute, crash and re-run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.cli.main import app
from featureledger.contracts import Column, Contract, Range
from featureledger.definitions import FileSource, SQLTransform
from featureledger.errors import (
    CoverageError,
    CoverageWarning,
    DataError,
    EmptyDataError,
    NotFoundError,
    SchemaMismatchError,
)

T0 = datetime(2025, 3, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
USER = Entity("user", join_keys=["user_id"])
runner = CliRunner()


def stats(*extra: Field, version: int | None = None, **kw: object) -> FeatureGroup:
    return FeatureGroup(
        "stats",
        USER,
        features=[Field("spend", "float64"), *extra],
        ttl=timedelta(days=1),
        version=version,
        **kw,  # type: ignore[arg-type]
    )


def batch(users: list[int], hours: list[int], spend: list[float], **more: list) -> pa.Table:
    columns = {
        "user_id": pa.array(users, pa.int64()),
        "event_timestamp": pa.array([T0 + timedelta(hours=h) for h in hours], TS),
        "spend": pa.array(spend, pa.float64()),
    }
    return pa.table({**columns, **more})


# -- materialize ---------------------------------------------------------------------------
def test_materialize_without_an_online_group_names_the_groups_and_fails(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    store = FeatureStore.init(repo)
    store.apply([stats()])
    with pytest.raises(NotFoundError, match=r"no feature group is online \(registered: stats\)"):
        store.materialize()
    result = runner.invoke(app, ["materialize", "--repo", str(repo)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "registered: stats" in text and "online=True" in text and "apply" in text


# -- add-column changes --------------------------------------------------------------------
def test_ingest_after_an_added_column_stores_null_where_it_is_left_out(
    store: FeatureStore,
) -> None:
    store.apply([stats()])
    store.ingest("stats", batch([1, 2], [0, 0], [1.0, 2.0]))
    plan = store.apply([stats(Field("clicks", "int64"))])
    assert [i.level for i in plan.changes] == ["minor"]
    store.ingest("stats", batch([3], [1], [3.0]))  # written before the change: no clicks
    store.ingest("stats", batch([4], [1], [4.0], clicks=pa.array([7], pa.int64())))
    rows = {r["user_id"]: r["clicks"] for r in store.read("stats").to_pylist()}
    assert rows == {1: None, 2: None, 3: None, 4: 7}
    # a column of the first version is still required
    with pytest.raises(SchemaMismatchError, match=r"missing column\(s\) \['spend'\]"):
        store.ingest("stats", batch([5], [1], [5.0]).drop_columns(["spend"]))


def test_an_added_column_the_contract_says_is_not_null_must_be_supplied(
    store: FeatureStore,
) -> None:
    store.apply([stats()])
    store.ingest("stats", batch([1], [0], [1.0]))
    contract = Contract("stats", columns=[Column("clicks", nullable=False)])
    store.apply([stats(Field("clicks", "int64"), contract=contract)])
    with pytest.raises(SchemaMismatchError) as info:
        store.ingest("stats", batch([3], [1], [3.0]))
    message = str(info.value)
    assert "missing column(s) ['clicks']" in message
    assert "added in 1.1.0" in message and "may not be null" in message
    assert "nothing was written" in message
    assert store.read("stats").num_rows == 1


def test_a_files_faults_are_reported_together(store: FeatureStore, tmp_path: Path) -> None:
    contract = Contract("stats", rules=[Range("spend", min=0.0)])
    store.apply([stats(Field("clicks", "int64"), Field("country", "string"), contract=contract)])
    before = store.versions("stats")
    path = tmp_path / "bad.csv"
    # no country column, clicks is text, and one spend breaks the contract's range
    path.write_text(
        "user_id,event_timestamp,spend,clicks\n"
        "1,2025-03-01T00:00:00Z,1.5,three\n"
        "2,2025-03-01T01:00:00Z,-4.0,4\n"
    )
    with pytest.raises(SchemaMismatchError) as info:
        store.ingest("stats", path)
    problems = info.value.problems
    assert any("missing column(s) ['country']" in p for p in problems), problems
    # the text cell is a row fault (the strict policy refuses the batch for it), named
    # with its column, row and value beside the batch's other problems
    assert any("'clicks'" in p and "int64" in p and "'three'" in p for p in problems), problems
    assert any(p.startswith("contract: range(spend)") for p in problems), problems
    assert store.versions("stats") == before
    # the command line prints them in one message too
    result = runner.invoke(app, ["ingest", "stats", str(path), "--repo", str(store.repo)])
    assert result.exit_code == 1
    for needle in ("country", "clicks", "range(spend)"):
        assert needle in result.output


# -- training data coverage ----------------------------------------------------------------
def coverage_repo(store: FeatureStore) -> None:
    other = FeatureGroup("other", USER, features=[Field("n", "int64")])
    store.apply([stats(), other, FeatureView("v", [stats(), other])])
    # stored event times: T0 .. T0+10h; ttl one day
    store.ingest("stats", batch([1, 1, 2], [0, 5, 10], [1.0, 2.0, 3.0]))


def entity_frame(hours: list[int]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([1] * len(hours), pa.int64()),
            "event_timestamp": pa.array([T0 + timedelta(hours=h) for h in hours], TS),
        }
    )


def test_training_data_warns_about_groups_with_no_data_at_the_frames_times(
    store: FeatureStore,
) -> None:
    coverage_repo(store)
    # one row an hour before anything stored, two more than a day after the last
    frame = entity_frame([-1, 3, 40, 50])
    with pytest.warns(CoverageWarning) as caught:
        result = store.training_data("v", frame)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 3, messages
    (empty,) = [m for m in messages if "other" in m]
    (early,) = [m for m in messages if "earlier" in m]
    (late,) = [m for m in messages if "later" in m]
    assert "feature_group/other@v1#0 holds no rows" in empty
    assert "1 of 4 entity row(s) are earlier than anything in feature_group/stats@v1#1" in early
    assert "2025-03-01 00:00:00+00:00 .. 2025-03-01 10:00:00.001000+00:00" in early
    assert "entity times 2025-02-28 23:00:00+00:00 .. 2025-03-03 02:00:00+00:00" in early
    assert "2 of 4 entity row(s) are later than the last event time" in late
    assert "ttl 1d" in late
    # what the warnings say is what the user gets: null features on those rows
    spend = result.to_arrow().column("spend").to_pylist()
    assert spend == [None, 1.0, None, None]
    assert result.warnings == [m.split(": ", 1)[1] for m in messages]
    with pytest.raises(CoverageError, match="refused \\(strict\\)") as info:
        store.training_data("v", frame, strict=True)
    assert len(info.value.problems) == 3
    assert len(store.training_datasets("v")) == 1  # the strict call recorded nothing


def test_training_data_inside_the_stored_range_is_quiet(store: FeatureStore) -> None:
    coverage_repo(store)
    store.ingest(
        "other", pa.table({"user_id": [1], "event_timestamp": pa.array([T0], TS), "n": [1]})
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoverageWarning)
        result = store.training_data("v", entity_frame([0, 5, 20]), strict=True)
    assert result.warnings == []


def test_training_data_command_warns_and_strict_exits_nonzero(
    store: FeatureStore, tmp_path: Path
) -> None:
    coverage_repo(store)
    frame = tmp_path / "frame.parquet"
    pq.write_table(entity_frame([-1, 3]), frame)
    args = ["training-data", "v", str(frame), "--repo", str(store.repo)]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "out.parquet")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (
        "warning: training data for feature_view/v@v1: feature_group/other@v1#0 holds no rows"
        in text
    )
    assert "1 of 2 entity row(s) are earlier" in text
    strict = runner.invoke(app, [*args, "-o", str(tmp_path / "s.parquet"), "--strict"])
    assert strict.exit_code == 1
    assert "refused (strict)" in strict.output
    assert not (tmp_path / "s.parquet").exists()


# -- backfill into a new major version -----------------------------------------------------
def two_majors(store: FeatureStore) -> list[dict]:
    """v1 (spend, legacy) with two data versions, then v2: legacy dropped, spend narrowed
    to float32 (a breaking change), clicks added. Returns v1's rows."""
    store.apply([stats(Field("legacy", "string"))])
    store.ingest("stats", batch([1, 2], [0, 0], [1.5, 2.5], legacy=["a", "b"]))
    store.ingest("stats", batch([1, 3], [0, 4], [9.0, 3.25], legacy=["c", None]))
    v2 = FeatureGroup(
        "stats",
        USER,
        features=[Field("spend", "float32"), Field("clicks", "int64")],
        ttl=timedelta(days=1),
        version=2,
    )
    store.apply([v2])
    return store.read("stats", major=1).to_pylist()


def expected_v2(v1_rows: list[dict]) -> list[dict]:
    """The reference mapping: keys and times kept, legacy dropped, clicks null."""
    out = [
        {
            "user_id": r["user_id"],
            "event_timestamp": r["event_timestamp"],
            "spend": r["spend"],
            "clicks": None,
        }
        for r in v1_rows
    ]
    return sorted(out, key=lambda r: (r["user_id"], r["event_timestamp"]))


def sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: (r["user_id"], r["event_timestamp"]))


def test_backfill_copies_rows_into_the_new_major_version(store: FeatureStore) -> None:
    v1_rows = two_majors(store)
    # the major-version flow: read and versions now show the new, empty v2
    assert store.read("stats").num_rows == 0
    assert [v.operation for v in store.versions("stats")] == ["create"]
    done = store.backfill("stats", from_version=1)
    assert done.changed and done.method == "copy"
    assert done.source == "feature_group/stats@v1#2"
    assert done.dropped == ("legacy",) and done.nulled == ("clicks",)
    assert str(done.version.identity) == "feature_group/stats@v2#1"
    assert sorted_rows(store.read("stats")) == expected_v2(v1_rows)
    assert store.read("stats").schema.field("spend").type == pa.float32()
    record = store.versions("stats")[-1]
    assert record.note.startswith("backfill (copy) from feature_group/stats@v1#2")
    audit = [e for e in store.audit_log() if e.action == "backfill"]
    assert [e.object for e in audit] == ["feature_group/stats@v2#1"]
    # v1 is untouched
    assert store.read("stats", major=1).to_pylist() == v1_rows
    # a re-run writes nothing
    again = store.backfill("stats", from_version=1, to_version=2)
    assert not again.changed
    assert [v.version for v in store.versions("stats")] == [0, 1]


def test_backfill_refuses_what_it_cannot_do(store: FeatureStore) -> None:
    store.apply([stats()])
    with pytest.raises(DataError, match="same major version"):
        store.backfill("stats", from_version=1)
    store.apply([stats(version=2)])
    with pytest.raises(EmptyDataError, match=r"stats@v1#0 holds no rows"):
        store.backfill("stats", from_version=1)
    store.ingest("stats", batch([1], [0], [1e40]), version=1)
    store.apply([stats(Field("x"), version=3)])
    store.apply([FeatureGroup("stats", USER, features=[Field("spend", "float32")], version=4)])
    with pytest.raises(SchemaMismatchError, match="'spend': expected float32"):
        store.backfill("stats", from_version=1, to_version=4)  # 1e40 does not fit a float32
    with pytest.raises(Exception, match="no source"):
        store.backfill("stats", from_version=1, to_version=3, recompute=True)


DAILY = """
    SELECT user_id, date_trunc('day', event_timestamp) + INTERVAL 1 DAY AS event_timestamp,
           {select}
    FROM source GROUP BY ALL
"""


def test_backfill_recompute_runs_the_new_pipeline_over_the_old_span(
    store: FeatureStore,
) -> None:
    raw = store.repo / "raw.parquet"
    days = [0, 0, 1, 3]
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 1, 2, 1], pa.int64()),
                "event_timestamp": pa.array([T0 + timedelta(days=d, hours=2) for d in days], TS),
                "amount": [1.0, 2.0, 5.0, 7.0],
            }
        ),
        raw,
    )

    def daily(version: int, select: str, features: list[Field]) -> FeatureGroup:
        return FeatureGroup(
            "daily",
            USER,
            features=features,
            source=FileSource("raw.parquet"),
            transform=SQLTransform(DAILY.format(select=select)),
            version=version,
        )

    store.apply([daily(1, "sum(amount) AS spend", [Field("spend")])])
    store.run_pipeline("daily", start=T0, end=T0 + timedelta(days=2))  # days 0 and 1 only
    v2 = daily(2, "max(amount) AS top, count(*) AS n", [Field("top"), Field("n", "int64")])
    store.apply([v2])
    done = store.backfill(v2, from_version=1, recompute=True)
    assert done.method == "recompute" and done.changed
    rows = sorted_rows(store.read("daily", major=2))
    # v1 covered event times day 1 .. day 2 (the day after each window day): day 3's
    # transaction lies outside that span and is not recomputed
    assert [(r["user_id"], r["event_timestamp"], r["top"], r["n"]) for r in rows] == [
        (1, T0 + timedelta(days=1), 2.0, 2),
        (2, T0 + timedelta(days=2), 5.0, 1),
    ]
    assert "backfill (recompute)" in store.versions("daily", major=2)[-1].note
    assert not store.backfill(v2, from_version=1, recompute=True).changed


def test_backfill_command(store: FeatureStore, tmp_path: Path) -> None:
    v1_rows = two_majors(store)
    args = ["backfill", "stats", "--from-version", "1", "--repo", str(store.repo)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "feature_group/stats@v2#1: 3 rows from feature_group/stats@v1#2 (copy)" in text
    assert "dropped (not in the new version): legacy" in text
    assert "null (added by the new version): clicks" in text
    assert sorted_rows(store.read("stats")) == expected_v2(v1_rows)
    again = runner.invoke(app, [*args, "--to-version", "2"])
    assert again.exit_code == 0 and "no change" in again.output
    # the old major stays readable from the command line
    old = tmp_path / "v1.parquet"
    read = ["read", "stats", "--version", "1", "-o", str(old), "--repo", str(store.repo)]
    assert runner.invoke(app, read).exit_code == 0
    assert pq.read_table(old).to_pylist() == v1_rows


# -- crash safety --------------------------------------------------------------------------
CRASH = {
    # after the data file is written, before the Delta log commit
    "before-commit": """
        import deltalake
        import pyarrow.parquet as pq
        import featureledger.offline.delta as delta

        def die(uri, data):
            pq.write_table(data, os.path.join(uri, "part-00000-crashed.snappy.parquet"))
            os.kill(os.getpid(), signal.SIGKILL)

        deltalake.write_deltalake = lambda uri, data, **kw: die(uri, data)
        delta.DeltaGroupTable.merge = lambda self, data, *a, **kw: die(self.uri, data)
    """,
    # after the Delta commit, before the registry records the version
    "after-commit": """
        from featureledger.store._records import VersionRecords

        original = VersionRecords.record

        def record_then_die(self, group, table, version, operation, *args, **kwargs):
            if operation != "create":
                os.kill(os.getpid(), signal.SIGKILL)
            return original(self, group, table, version, operation, *args, **kwargs)

        VersionRecords.record = record_then_die
    """,
}


@pytest.mark.subprocess
@pytest.mark.parametrize("when", sorted(CRASH))
def test_backfill_killed_leaves_a_readable_state_and_a_rerun_repairs(
    store: FeatureStore, tmp_path: Path, when: str
) -> None:
    v1_rows = two_majors(store)
    before = store.versions("stats")
    script = tmp_path / "child.py"
    script.write_text(
        "import os, signal, sys\nfrom featureledger import FeatureStore\n"
        + textwrap.dedent(CRASH[when])
        + "\nFeatureStore(sys.argv[1]).backfill('stats', from_version=1)\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script), str(store.repo)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FEATURELEDGER_USER": "crasher"},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    fresh = FeatureStore(store.repo)
    if when == "before-commit":
        assert fresh.versions("stats") == before  # the previous state, orphan ignored
        assert fresh.read("stats").num_rows == 0
    else:
        versions = fresh.versions("stats")  # the commit is recorded, as recovered
        assert [v.version for v in versions] == [0, 1]
        assert "recovered" in versions[-1].note
        assert sorted_rows(fresh.read("stats")) == expected_v2(v1_rows)
    # the re-run repairs: v2 ends holding v1's rows, in one backfilled version
    fresh.backfill("stats", from_version=1)
    assert sorted_rows(fresh.read("stats")) == expected_v2(v1_rows)
    assert [v.version for v in fresh.versions("stats")] == [0, 1]
    assert fresh.read("stats", major=1).to_pylist() == v1_rows
    assert all(r.ok for r in fresh.verify("feature_group/stats@v2#1"))


# -- properties against plain references ---------------------------------------------------
v1_rows_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),  # user
        st.integers(-48, 48),  # hour
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False, width=32)),  # spend
        st.one_of(st.none(), st.text("abc", max_size=3)),  # legacy
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda r: (r[0], r[1]),
)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=v1_rows_strategy)
def test_backfill_copy_matches_a_plain_mapping(rows: list[tuple]) -> None:
    """Any v1 content copied into v2 (legacy dropped, spend float32, clicks added) equals
    the reference mapping row for row, and a second backfill writes nothing."""
    users, hours, spend, legacy = (list(c) for c in zip(*rows, strict=True))
    # closed before its folder goes: statistics are computed in the background
    with tempfile.TemporaryDirectory() as tmp, FeatureStore.init(Path(tmp) / "repo") as store:
        store.apply([stats(Field("legacy", "string"))])
        store.ingest("stats", batch(users, hours, spend, legacy=pa.array(legacy, pa.string())))
        v2 = FeatureGroup(
            "stats",
            USER,
            features=[Field("spend", "float32"), Field("clicks", "int64")],
            ttl=timedelta(days=1),
            version=2,
        )
        store.apply([v2])
        done = store.backfill("stats", from_version=1)
        reference = expected_v2(store.read("stats", major=1).to_pylist())
        assert sorted_rows(store.read("stats")) == reference
        assert done.version.rows == len(rows)
        assert not store.backfill("stats", from_version=1).changed


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stored=st.lists(st.integers(-100, 100), min_size=1, max_size=10),
    frame=st.lists(st.integers(-200, 200), min_size=1, max_size=20),
    ttl_hours=st.one_of(st.none(), st.integers(1, 50)),
)
def test_coverage_counts_match_a_plain_count(
    stored: list[int], frame: list[int], ttl_hours: int | None
) -> None:
    """The rows reported early (before the first stored time) and late (after the last plus
    the TTL) are exactly those a plain count finds, and they are the rows the join leaves
    null for lack of any row in range."""
    ttl = None if ttl_hours is None else timedelta(hours=ttl_hours)
    group = FeatureGroup("g", USER, features=[Field("spend")], ttl=ttl)
    # closed before its folder goes: statistics are computed in the background
    with tempfile.TemporaryDirectory() as tmp, FeatureStore.init(Path(tmp) / "repo") as store:
        store.apply([group, FeatureView("v", [group])])
        hours = sorted(set(stored))
        store.ingest("g", batch([1] * len(hours), hours, [float(h) for h in hours]))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CoverageWarning)
            result = store.training_data("v", entity_frame(frame))
        early = sum(h < min(hours) for h in frame)
        late = 0 if ttl_hours is None else sum(h > max(hours) + ttl_hours for h in frame)
        messages = [str(w.message) for w in caught]
        expected = []
        if early:
            expected.append(f"{early:,} of {len(frame):,} entity row(s) are earlier")
        if late:
            expected.append(f"{late:,} of {len(frame):,} entity row(s) are later")
        assert len(messages) == len(expected), messages
        for text in expected:
            assert any(text in m for m in messages), (text, messages)
        spend = result.to_arrow().column("spend").to_pylist()
        for h, value in zip(frame, spend, strict=True):
            if h < min(hours) or (ttl_hours is not None and h > max(hours) + ttl_hours):
                assert value is None
