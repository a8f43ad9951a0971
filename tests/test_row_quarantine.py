"""Row-level faults: under policy quarantine the good rows publish and each bad row is held
back with its reason; under strict the whole batch is refused and kept under rejected/.
Nothing is lost either way: published + quarantined = input."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, Field
from featureledger.errors import DataError, TimestampError

T0 = datetime(2024, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
FEATURES = [Field("clicks", "int32"), Field("spend")]


def group(policy: str) -> FeatureGroup:
    return FeatureGroup("stats", USER, features=FEATURES, created_time="created", policy=policy)


@pytest.fixture(params=["quarantine", "strict"])
def policy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_store(tmp_path: Path, policy: str) -> FeatureStore:
    store = FeatureStore.init(tmp_path / "repo")
    store.apply([USER, group(policy)])
    return store


def rows(n: int = 6) -> list[dict[str, Any]]:
    return [
        {
            "user_id": i,
            "event_timestamp": T0 + timedelta(hours=i),
            "created": T0,
            "clicks": i,
            "spend": 1.5 * i,
        }
        for i in range(n)
    ]


def check(
    store: FeatureStore, policy: str, data: Any, bad: dict[int, str], *words: str, n: int = 6
) -> None:
    """Ingest ``data`` of ``n`` rows whose rows ``bad`` (position -> reason prefix) are faulty."""
    if policy == "strict":
        with pytest.raises(DataError) as info:
            store.ingest("stats", data)
        message = str(info.value)
        for word in [*words, "Nothing was written", "kept at"]:
            assert word in message, (word, message)
        named = {
            int(i) for group in re.findall(r"rows \[([\d, ]+)\]", message) for i in group.split(",")
        }
        assert named == set(bad), message
        assert store.versions("stats")[-1].version == 0  # nothing published
        kept = re.search(r"kept at (\S+\.parquet)", message)
        assert kept is not None
        batch = pq.read_table(kept.group(1))
        assert batch.num_rows == n  # the whole batch, good rows too
        reasons = batch.column("__fl_failed_rules").to_pylist()
        assert [i for i, r in enumerate(reasons) if r] == sorted(bad)
        for i, prefix in bad.items():
            assert any(r.startswith(prefix) for r in reasons[i]), (prefix, reasons[i])
        return
    version = store.ingest("stats", data)
    published = store.read("stats")
    held = store.quarantined("stats")
    # nothing lost, nothing twice: good + quarantined = input
    assert published.num_rows + held.num_rows == n
    assert version.rows == n - len(bad)
    good_ids = set(published.column("user_id").to_pylist())
    assert good_ids == set(range(n)) - set(bad)
    assert held.num_rows == len(bad)
    reasons = held.column("__fl_failed_rules").to_pylist()
    for prefix in bad.values():
        assert any(r.startswith(prefix) for rs in reasons for r in rs), (prefix, reasons)
    assert all(held.column("__fl_run").to_pylist())


def test_null_keys(tmp_path: Path, policy: str) -> None:
    store = open_store(tmp_path, policy)
    data = rows()
    data[2]["user_id"] = None
    data[4]["user_id"] = None
    check(store, policy, data, {2: "null_key(user_id)", 4: "null_key(user_id)"}, "'user_id'")
    if policy == "quarantine":
        held = store.quarantined("stats")
        # the rest of a held row is kept as given
        assert sorted(held.column("clicks").to_pylist()) == [2, 4]


def test_unparseable_values_in_row_dicts(tmp_path: Path, policy: str) -> None:
    store = open_store(tmp_path, policy)
    data = rows()
    data[1]["clicks"] = "many"
    data[3]["spend"] = 2**70
    check(
        store,
        policy,
        data,
        {1: "unparseable(clicks): 'many'", 3: "unparseable(spend)"},
        "'clicks'",
        "'spend'",
    )


def test_unparseable_csv_cells(tmp_path: Path, policy: str) -> None:
    store = open_store(tmp_path, policy)
    path = tmp_path / "batch.csv"
    lines = ["user_id,event_timestamp,created,clicks,spend"]
    for r in rows():
        clicks = "oops" if r["user_id"] == 5 else str(r["clicks"])
        stamp = r["event_timestamp"].isoformat()
        lines.append(f"{r['user_id']},{stamp},{r['created'].isoformat()},{clicks},{r['spend']}")
    path.write_text("\n".join(lines) + "\n")
    check(store, policy, path, {5: "unparseable(clicks): 'oops'"}, "'clicks'")


def test_times_out_of_range(tmp_path: Path, policy: str) -> None:
    store = open_store(tmp_path, policy)
    table = pa.Table.from_pylist(rows())
    times = table.column("event_timestamp").cast(pa.int64()).to_pylist()
    times[0] = 2**62  # beyond Python's datetime
    created = table.column("created").cast(pa.int64()).to_pylist()
    created[3] = -(2**62)  # year 1 and before
    table = table.set_column(1, "event_timestamp", pa.array(times, pa.timestamp("us", "UTC")))
    table = table.set_column(2, "created", pa.array(created, pa.timestamp("us", "UTC")))
    check(
        store,
        policy,
        table,
        {0: "time_range(event_timestamp)", 3: "time_range(created)"},
        "[1678-01-01, 2262-01-01) UTC",
    )
    if policy == "quarantine":
        # the values that were held are readable in the reason, not as a wrong timestamp
        held = store.quarantined("stats")
        assert held.column("event_timestamp").null_count == 1
        assert store.read("stats").num_rows == 4


def test_sub_microsecond_times_in_every_format(tmp_path: Path, policy: str) -> None:
    store = open_store(tmp_path, policy)
    frame = pd.DataFrame(rows())
    stamp = pd.Timestamp("2024-01-01T05:00:00.000000001Z")
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[ns, UTC]")
    frame.loc[5, "event_timestamp"] = stamp
    check(store, policy, frame, {5: "sub_microsecond(event_timestamp)"}, "sub-microsecond")
    if policy == "quarantine":
        store.resolve_quarantine("stats")
    # row dicts holding the same pandas Timestamp are refused the same way (not truncated)
    data = rows()
    for r in data:
        r["user_id"] += 100
    data[0]["event_timestamp"] = stamp
    if policy == "strict":
        with pytest.raises(TimestampError, match="sub-microsecond"):
            store.ingest("stats", data)
    else:
        store.ingest("stats", data)
        assert 100 not in store.read("stats").column("user_id").to_pylist()
        assert store.quarantined("stats").num_rows == 1


def test_several_faults_on_one_row_give_every_reason(tmp_path: Path) -> None:
    store = open_store(tmp_path, "quarantine")
    data = rows()
    data[0]["user_id"] = None
    data[0]["clicks"] = "x"
    store.ingest("stats", data)
    (reasons,) = store.quarantined("stats").column("__fl_failed_rules").to_pylist()
    assert [r.split(":")[0] for r in reasons] == ["unparseable(clicks)", "null_key(user_id)"]


def test_all_rows_faulty_publishes_nothing_and_loses_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path, "quarantine")
    data = rows(3)
    for r in data:
        r["user_id"] = None
    before = store.versions("stats")
    assert store.ingest("stats", data).version == before[-1].version
    assert store.versions("stats") == before
    assert store.quarantined("stats").num_rows == 3
    entry = store.audit_log()[-1] if hasattr(store, "audit_log") else None
    if entry is not None:
        assert entry.action == "quarantine"


def test_batch_level_problems_are_still_refused_whole(tmp_path: Path) -> None:
    """A missing column or a naive time column is not a row fault: nothing is held."""
    store = open_store(tmp_path, "quarantine")
    data = [{k: v for k, v in r.items() if k != "spend"} for r in rows()]
    data[0]["user_id"] = None
    with pytest.raises(DataError, match="missing column"):
        store.ingest("stats", data)
    assert store.quarantined("stats").num_rows == 0
