"""Bad input is refused with an error that names the problem, and nothing is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import yaml

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field, content_hash
from featureledger.config import CONFIG_FILE
from featureledger.errors import (
    DataError,
    DefinitionError,
    EmptyDataError,
    InvalidNameError,
    SchemaMismatchError,
    TimestampError,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup(
    "stats", USER, features=[Field("clicks", "int32"), Field("spend")], created_time="created"
)
PROFILE = FeatureGroup("profile", USER, features=[Field("country", "string")], event_time=None)


def good(n: int = 3, offset: int = 0) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(range(offset, offset + n), pa.int64()),
            "event_timestamp": pa.array([T0 + timedelta(hours=i) for i in range(n)], TS),
            "created": pa.array([T0] * n, TS),
            "clicks": pa.array(range(n), pa.int32()),
            "spend": pa.array([1.5] * n, pa.float64()),
        }
    )


@pytest.fixture
def filled(store: FeatureStore) -> FeatureStore:
    store.apply([USER, STATS, PROFILE])
    store.ingest("stats", good())
    return store


class Intact:
    """Captures a group's versions and rows; `check` asserts nothing changed since."""

    def __init__(self, store: FeatureStore, group: str = "stats") -> None:
        self.store, self.group = store, group
        self.versions = store.versions(group)
        self.rows = store.read(group)

    def check(self) -> None:
        assert self.store.versions(self.group) == self.versions
        now = self.store.read(self.group)
        assert now.equals(self.rows)
        assert content_hash(now) == self.versions[-1].content


def refused(
    store: FeatureStore, data, exc: type[Exception], *words: str, group: str = "stats", **kwargs
) -> Exception:
    """Ingest ``data``, expect ``exc`` whose message has every word, and check nothing changed."""
    intact = Intact(store, group)
    with pytest.raises(exc) as info:
        store.ingest(group, data, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    intact.check()
    return info.value


# -- schema ---------------------------------------------------------------------------------------


def test_string_into_float_column(filled: FeatureStore) -> None:
    bad = good().set_column(4, "spend", pa.array(["1.5", "x", "2"]))
    err = refused(
        filled,
        bad,
        SchemaMismatchError,
        "'spend'",
        "expected float64",
        "string",
        "nothing was written",
    )
    assert isinstance(err, SchemaMismatchError) and len(err.problems) == 1


def test_every_problem_is_listed_at_once(filled: FeatureStore) -> None:
    bad = good().set_column(4, "spend", pa.array(["a", "b", "c"]))
    bad = bad.set_column(3, "clicks", pa.array(["1", "2", "3"]))
    err = refused(filled, bad, SchemaMismatchError, "'clicks'", "'spend'")
    assert len(err.problems) == 2


def test_values_that_do_not_fit_are_refused(filled: FeatureStore) -> None:
    big = good().set_column(3, "clicks", pa.array([1, 2, 2**40], pa.int64()))
    refused(filled, big, SchemaMismatchError, "'clicks'", "expected int32", "do not fit")
    frac = good().set_column(3, "clicks", pa.array([1.0, 2.5, 3.0]))
    refused(filled, frac, SchemaMismatchError, "'clicks'", "expected int32")
    # lossless narrowing is accepted: int64 values that fit int32
    fits = good(offset=10).set_column(3, "clicks", pa.array([1, 2, 3], pa.int64()))
    assert filled.ingest("stats", fits).rows == 6


def test_missing_key_column(filled: FeatureStore) -> None:
    refused(
        filled,
        good().drop_columns(["user_id"]),
        SchemaMismatchError,
        "missing column(s) ['user_id']",
    )


def test_missing_event_time_column(filled: FeatureStore) -> None:
    refused(
        filled,
        good().drop_columns(["event_timestamp"]),
        SchemaMismatchError,
        "missing column(s) ['event_timestamp']",
    )


def test_renamed_column_gets_a_hint(filled: FeatureStore) -> None:
    bad = good().rename_columns(["uid", "event_timestamp", "created", "clicks", "spend"])
    refused(filled, bad, SchemaMismatchError, "'user_id'", "is 'uid' meant to be 'user_id'")


def test_extra_columns(filled: FeatureStore) -> None:
    bad = good().append_column("secret", pa.array(["a", "b", "c"]))
    refused(filled, bad, SchemaMismatchError, "unexpected column(s) ['secret']")


def test_duplicate_columns(filled: FeatureStore) -> None:
    bad = pa.Table.from_arrays(
        [*good().columns, good().column("spend")], names=[*good().column_names, "spend"]
    )
    refused(filled, bad, SchemaMismatchError, "['spend'] appear more than once")


def test_empty_frames(filled: FeatureStore) -> None:
    refused(filled, good().slice(0, 0), EmptyDataError, "no rows")
    refused(filled, good().slice(0, 0).to_pandas(), EmptyDataError, "no rows")
    refused(filled, pl.from_arrow(good()).head(0), EmptyDataError, "no rows")


def test_wrong_key_type(filled: FeatureStore) -> None:
    bad = good().set_column(0, "user_id", pa.array(["a", "b", "c"]))
    refused(filled, bad, SchemaMismatchError, "'user_id'", "expected int64, got string")


# -- nulls ------------------------------------------------------------------------------------


def test_null_keys_are_refused(filled: FeatureStore) -> None:
    bad = good().set_column(0, "user_id", pa.array([1, None, 3], pa.int64()))
    refused(filled, bad, DataError, "'user_id'", "1 null value", "rows [1]", "keys may not be null")
    # pandas nullable integers too
    df = good().to_pandas()
    df["user_id"] = pd.array([1, None, 3], dtype="Int64")
    refused(filled, df, DataError, "'user_id'", "null value")


def test_null_event_times_are_refused(filled: FeatureStore) -> None:
    bad = good().set_column(1, "event_timestamp", pa.array([T0, None, None], TS))
    refused(filled, bad, TimestampError, "'event_timestamp'", "2 null value", "rows [1, 2]")
    df = good().to_pandas()
    df.loc[0, "event_timestamp"] = pd.NaT
    refused(filled, df, TimestampError, "'event_timestamp'", "null")


def test_null_created_times_are_refused(filled: FeatureStore) -> None:
    bad = good().set_column(2, "created", pa.array([T0, None, T0], TS))
    refused(filled, bad, TimestampError, "'created'", "null")


def test_null_features_are_fine(filled: FeatureStore) -> None:
    ok = good(offset=10).set_column(4, "spend", pa.array([None, 1.0, None], pa.float64()))
    v = filled.ingest("stats", ok)
    assert v.rows == 6
    assert filled.read("stats").column("spend").null_count == 2


# -- timestamps ------------------------------------------------------------------------------


def test_naive_timestamps_are_refused_with_how_to_localize(filled: FeatureStore) -> None:
    naive = good().set_column(
        1, "event_timestamp", pa.array([datetime(2024, 1, 1, h) for h in range(3)])
    )
    err = refused(
        filled,
        naive,
        TimestampError,
        "'event_timestamp'",
        "naive",
        "tz_localize",
        "naive_timestamps: utc",
    )
    assert "featureledger.yaml" in str(err)
    # from pandas too
    df = good().to_pandas()
    df["event_timestamp"] = df["event_timestamp"].dt.tz_localize(None)
    refused(filled, df, TimestampError, "naive")


def test_naive_timestamps_accepted_when_configured(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    FeatureStore.init(root)
    cfg = yaml.safe_load((root / CONFIG_FILE).read_text())
    cfg["naive_timestamps"] = "utc"
    (root / CONFIG_FILE).write_text(yaml.safe_dump(cfg))
    store = FeatureStore(root)
    store.apply([USER, STATS])
    naive = good().set_column(
        1, "event_timestamp", pa.array([datetime(2024, 1, 1, h) for h in range(3)])
    )
    store.ingest("stats", naive)
    stored = store.read("stats").column("event_timestamp").to_pylist()
    assert stored == [T0 + timedelta(hours=h) for h in range(3)]  # read as UTC
    # and the same rows given as aware UTC values are identical: nothing new
    assert store.ingest("stats", good()).version == 1


def test_other_time_zones_are_converted_to_the_same_instant(filled: FeatureStore) -> None:
    df = good(offset=10).to_pandas()
    df["event_timestamp"] = df["event_timestamp"].dt.tz_convert("America/New_York")
    filled.ingest("stats", df)
    arrow = good(offset=20)
    arrow = arrow.set_column(
        1, "event_timestamp", arrow.column("event_timestamp").cast(pa.timestamp("ms", "Asia/Tokyo"))
    )
    filled.ingest("stats", arrow)
    polars = pl.from_arrow(good(offset=30)).with_columns(
        pl.col("event_timestamp").dt.convert_time_zone("Europe/Berlin")
    )
    filled.ingest("stats", polars)
    table = filled.read("stats")
    assert table.schema.field("event_timestamp").type == TS
    by_user = {r["user_id"]: r["event_timestamp"] for r in table.to_pylist()}
    for base in (10, 20, 30):
        assert [by_user[base + i] for i in range(3)] == [T0 + timedelta(hours=i) for i in range(3)]


def test_sub_microsecond_timestamps_are_refused(filled: FeatureStore) -> None:
    ns = pa.array(
        [1_704_067_200_000_000_001, 1_704_067_200_000_001_000, 1], pa.timestamp("ns", "UTC")
    )
    bad = good().set_column(1, "event_timestamp", ns)
    refused(filled, bad, TimestampError, "'event_timestamp'", "sub-microsecond", "floor('us')")
    # nanosecond values on whole microseconds are fine
    whole = pa.array(
        [1_704_067_200_000_000_000, 1_704_067_200_000_001_000, 1_000], pa.timestamp("ns", "UTC")
    )
    filled.ingest("stats", good(offset=10).set_column(1, "event_timestamp", whole))
    got = [r["event_timestamp"] for r in filled.read("stats").to_pylist() if r["user_id"] >= 10]
    assert got[1] == T0 + timedelta(microseconds=1)


def test_non_timestamp_time_columns_are_refused(filled: FeatureStore) -> None:
    strings = good().set_column(1, "event_timestamp", pa.array(["2024-01-01"] * 3))
    refused(
        filled,
        strings,
        TimestampError,
        "'event_timestamp'",
        "must hold timestamps",
        "pd.to_datetime",
    )
    dates = good().set_column(1, "event_timestamp", pa.array([T0.date()] * 3, pa.date32()))
    refused(filled, dates, TimestampError, "'event_timestamp'", "dates")
    ints = good().set_column(2, "created", pa.array([1, 2, 3]))
    refused(filled, ints, TimestampError, "'created'")


def test_bad_csv_values_name_the_column(filled: FeatureStore, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "user_id,event_timestamp,created,clicks,spend\n"
        "1,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z,oops,1.0\n"
    )
    refused(filled, path, DataError, "'clicks'")


# -- static groups ------------------------------------------------------------------------


def test_static_group_refuses_a_stray_event_time(filled: FeatureStore) -> None:
    filled.ingest("profile", pa.table({"user_id": [1], "country": ["DE"]}))
    bad = pa.table({"user_id": [2], "event_timestamp": pa.array([T0], TS), "country": ["FR"]})
    refused(filled, bad, SchemaMismatchError, "['event_timestamp']", group="profile")
    refused(
        filled,
        pa.table({"user_id": pa.array([None], pa.int64()), "country": ["FR"]}),
        DataError,
        "'user_id'",
        "null",
        group="profile",
    )


# -- names ---------------------------------------------------------------------------------

BAD_NAMES = [
    "a/b",
    "x;drop table",
    'x"y',
    "../etc",
    "a b",
    "a\\b",
    "1abc",
    "",
    "é",
    "a.b",
    "x'--",
    "a" * 129,
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_unsafe_names_are_refused_at_definition_time(name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        Entity(name)
    assert repr(name) in str(info.value) and "letters, digits and underscores" in str(info.value)
    with pytest.raises(InvalidNameError):
        Entity("user", join_keys=[name])
    with pytest.raises(InvalidNameError):
        FeatureGroup(name, USER, features=["f"])
    with pytest.raises(InvalidNameError):
        FeatureGroup("g", USER, features=[name])
    with pytest.raises(InvalidNameError):
        FeatureGroup("g", USER, features=["f"], event_time=name)
    with pytest.raises(InvalidNameError):
        FeatureGroup("g", USER, features=["f"], created_time=name)
    with pytest.raises(InvalidNameError):
        Field(name)
    with pytest.raises(InvalidNameError):
        FeatureView(name, [STATS])
    with pytest.raises(InvalidNameError):
        STATS.select("clicks", join_key_map={"user_id": name})


def test_invalid_name_error_says_why() -> None:
    with pytest.raises(InvalidNameError, match="contains '/'"):
        Entity("a/b")
    with pytest.raises(InvalidNameError, match="starts with a digit"):
        Entity("1abc")
    with pytest.raises(InvalidNameError, match="longer than 128"):
        Entity("a" * 129)
    with pytest.raises(InvalidNameError, match="empty"):
        Entity("")
    with pytest.raises(InvalidNameError, match="not a string"):
        Entity(3)  # type: ignore[arg-type]
    assert issubclass(InvalidNameError, DefinitionError)


def test_refused_names_leave_no_trace(store: FeatureStore) -> None:
    with pytest.raises(InvalidNameError):
        store.apply([FeatureGroup("../etc", USER, features=["f"])])
    assert store.list_definitions("feature_group") == []
    assert not (store.repo / ".featureledger" / "etc").exists()
    assert not (store.repo / "etc").exists()


def test_unsafe_identity_strings_are_not_looked_up(filled: FeatureStore) -> None:
    from featureledger.errors import IdentityParseError, NotFoundError

    for text in ["feature_group/../etc", "feature_group/x;drop table", 'feature_group/x"y']:
        with pytest.raises(IdentityParseError):
            filled.show(text)
    with pytest.raises(NotFoundError):
        filled.read("x;drop table")
    assert filled.versions("stats")[-1].rows == 3


# -- entity frames -------------------------------------------------------------------------


@pytest.fixture
def viewed(filled: FeatureStore) -> FeatureStore:
    filled.apply([FeatureView("fraud", [STATS[["clicks"]]])])
    return filled


def entities(**override) -> pa.Table:
    base = {
        "user_id": pa.array([0, 1], pa.int64()),
        "event_timestamp": pa.array([T0 + timedelta(days=1)] * 2, TS),
    }
    base.update(override)
    return pa.table(base)


def refused_entities(
    store: FeatureStore, frame, exc: type[Exception], *words: str, **kwargs
) -> Exception:
    with pytest.raises(exc) as info:
        store.training_data("fraud", frame, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    assert store.training_datasets("fraud") == []
    return info.value


def test_entity_frame_works_when_well_formed(viewed: FeatureStore) -> None:
    td = viewed.training_data("fraud", entities())
    assert td.to_arrow().column("clicks").to_pylist() == [0, 1]


def test_entity_frame_missing_key_column(viewed: FeatureStore) -> None:
    frame = entities().drop_columns(["user_id"])
    refused_entities(viewed, frame, SchemaMismatchError, "lacks column(s) ['user_id']")


def test_entity_frame_missing_time_column(viewed: FeatureStore) -> None:
    frame = entities().rename_columns(["user_id", "ts"])
    refused_entities(viewed, frame, SchemaMismatchError, "['event_timestamp']", "timestamp_column=")
    # naming it works
    assert viewed.training_data("fraud", frame, timestamp_column="ts").record.rows == 2


def test_entity_frame_wrong_key_type(viewed: FeatureStore) -> None:
    frame = entities(user_id=pa.array(["0", "1"]))
    refused_entities(viewed, frame, SchemaMismatchError, "'user_id'", "expected int64", "join key")


def test_entity_frame_naive_or_missing_times(viewed: FeatureStore) -> None:
    refused_entities(
        viewed,
        entities(event_timestamp=pa.array([datetime(2024, 1, 2)] * 2)),
        TimestampError,
        "naive",
    )
    refused_entities(viewed, entities().slice(0, 0), EmptyDataError, "no rows")
    refused_entities(
        viewed,
        entities(event_timestamp=pa.array(["2024-01-02"] * 2)),
        TimestampError,
        "must hold timestamps",
    )


def test_entity_frame_clashing_with_feature_names(viewed: FeatureStore) -> None:
    frame = entities().append_column("clicks", pa.array([1, 2]))
    refused_entities(viewed, frame, SchemaMismatchError, "['clicks']", "full_feature_names")


def test_training_data_unknown_pins(viewed: FeatureStore) -> None:
    refused_entities(viewed, entities(), DataError, "['nope']", versions={"nope": 1})


# -- crash classes found by fuzzing (issue 11): each is now a clear error, nothing written ---------


def test_duplicate_columns_are_named_in_pandas_parquet_and_csv(
    filled: FeatureStore, tmp_path: Path
) -> None:
    df = good().to_pandas()
    df.columns = ["user_id", "event_timestamp", "created", "clicks", "clicks"]
    refused(filled, df, SchemaMismatchError, "['clicks'] appear more than once")
    path = tmp_path / "dup.parquet"
    import pyarrow.parquet as pq

    pq.write_table(
        pa.Table.from_arrays(
            [*good().columns, good().column("spend")], names=[*good().column_names, "spend"]
        ),
        path,
    )
    refused(filled, path, SchemaMismatchError, "['spend'] appear more than once", str(path))
    csv_path = tmp_path / "dup.csv"
    csv_path.write_text("user_id,user_id,event_timestamp,created,clicks,spend\n")
    refused(filled, csv_path, SchemaMismatchError, "['user_id'] appear more than once")


@pytest.mark.parametrize(
    "column, value",
    [
        ("event_timestamp", datetime(1, 1, 1, tzinfo=UTC)),
        ("event_timestamp", 2**62),  # beyond Python's datetime
        ("created", datetime(1, 1, 1, tzinfo=UTC)),
        ("created", 2**63 - 1),
        ("created", datetime(9999, 12, 31, tzinfo=UTC)),
    ],
)
def test_times_outside_the_supported_range_are_refused(
    filled: FeatureStore, column: str, value: object
) -> None:
    index = good().schema.get_field_index(column)
    times = good().column(column).cast(pa.int64()).to_pylist()
    micros = value
    if isinstance(value, datetime):
        micros = (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    times[1] = micros
    bad = good().set_column(index, column, pa.array(times, TS))
    refused(filled, bad, TimestampError, repr(column), "rows [1]", "[1678-01-01, 2262-01-01) UTC")
    if isinstance(value, datetime):  # the same from row dicts
        rows = good().to_pylist()
        rows[1][column] = value
        refused(filled, rows, TimestampError, repr(column), "rows [1]", "supported range")


def test_integers_beyond_64_bits_in_row_dicts(filled: FeatureStore) -> None:
    rows = good(offset=10).to_pylist()
    rows[2]["user_id"] = 2**63
    refused(filled, rows, DataError, "'user_id'", "rows [2]", "9223372036854775808")
    rows = good(offset=10).to_pylist()
    rows[0]["clicks"] = 2**64
    refused(filled, rows, DataError, "'clicks'", "rows [0]")
    refused(filled, {**good().to_pydict(), "spend": [1.0, 2**70, 3.0]}, DataError, "'spend'")


def test_nanoseconds_are_refused_in_row_dicts_and_iso_strings(filled: FeatureStore) -> None:
    rows = good(offset=10).to_pylist()
    rows[1]["event_timestamp"] = pd.Timestamp("2024-01-01T00:00:00.000000001Z")
    refused(filled, rows, TimestampError, "sub-microsecond", "rows [1]", "floor('us')")
    rows = good(offset=10).to_pylist()
    rows[0]["event_timestamp"] = "2024-01-01T00:00:00.000000001Z"
    refused(filled, rows, TimestampError, "sub-microsecond", "rows [0]")
    # ISO strings as JSON sends them are times; more than six zero digits lose nothing
    rows = good(offset=10).to_pylist()
    rows[0]["event_timestamp"] = "2024-01-01T00:00:00.000000000Z"
    rows[1]["event_timestamp"] = "2024-01-01T01:00:00+00:00"
    filled.ingest("stats", rows)
    stored = {r["user_id"]: r["event_timestamp"] for r in filled.read("stats").to_pylist()}
    assert stored[10] == T0 and stored[11] == T0 + timedelta(hours=1)


def test_an_empty_list_says_there_are_no_rows(filled: FeatureStore) -> None:
    refused(filled, [], EmptyDataError, "empty list", "no rows")


def test_a_huge_csv_cell_gets_a_clear_message(filled: FeatureStore, tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    cell = "x" * (40 << 20)  # the case; rows up to 16 MiB are read
    path.write_text(
        "user_id,event_timestamp,created,clicks,spend\n"
        "1,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z,1,1.0\n"
        f'2,2024-01-01T00:00:00Z,2024-01-01T00:00:00Z,1,"{cell}"\n'
    )
    refused(filled, path, DataError, "row longer than 16 MiB", "(line 3)", "unbalanced quote")


def test_one_string_is_one_name_in_definitions() -> None:
    assert Entity("e", join_keys="user_id").key_names == ("user_id",)
    group = FeatureGroup("g", USER, features="clicks", licenses="mit")
    assert group.licenses == ("mit",) and group.feature_names == ("clicks",)
    with pytest.raises(DefinitionError, match="features must be a list, got None"):
        FeatureGroup("g", USER, features=None)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="licenses must be a list"):
        FeatureGroup("g", USER, features=["f"], licenses=3)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="tags must be a mapping"):
        Entity("e", tags=["a"])  # type: ignore[arg-type]


def test_contract_files_and_durations_give_clear_errors(tmp_path: Path) -> None:
    from featureledger.contracts import load_contract
    from featureledger.errors import NotFoundError

    with pytest.raises(NotFoundError, match=r"contract file .*missing.yaml' does not exist"):
        load_contract(tmp_path / "missing.yaml")
    with pytest.raises(NotFoundError):
        load_contract(str(tmp_path / "missing.yaml"))
    text = (
        "apiVersion: featureledger/v1\nkind: DataContract\ndataset: g\n"
        "schema:\n  - name: g\n    properties:\n      - name: t\n        physicalType: timestamp\n"
        "slaProperties:\n  - rule: freshness\n    column: t\n    max_age: 99999999999999999999d\n"
    )
    with pytest.raises(DefinitionError, match=r"99999999999999999999d.*out of range"):
        load_contract(text)


@pytest.mark.parametrize("odd", ["\x85", "\u2028", "\u2029", "\x1c", "\r"])
def test_strings_with_unicode_line_breaks_keep_the_log_readable(tmp_path: Path, odd: str) -> None:
    # found by scripts/fuzz.py: a string holding NEL (\x85) reached the Delta commit's
    # min/max statistics unescaped, and reading that commit split the JSON line in two,
    # so the ingest and every later write of the group failed
    store = FeatureStore.init(tmp_path / "repo")
    user = Entity("user", join_keys=["user_id"])
    g = FeatureGroup("g", user, event_time=None, features=[Field("label", "string")])
    store.apply([user, g])
    first = store.ingest("g", {"user_id": [1, 2], "label": [f"a{odd}b", f"ü{odd}"]})
    second = store.ingest("g", {"user_id": [3], "label": ["plain"]})
    assert second.version == first.version + 1
    assert sorted(store.read("g").column("label").to_pylist()) == sorted(
        [f"a{odd}b", f"ü{odd}", "plain"]
    )
    assert [v.version for v in store.versions("g")] == [0, first.version, second.version]
    store.close()
