"""Splits stored with the training set: parts, their identities, hashes and the gap rule."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.definitions import VersionId
from featureledger.definitions.split import Split
from featureledger.errors import (
    DefinitionError,
    IdentityParseError,
    NotFoundError,
    SchemaMismatchError,
    SplitGapWarning,
)
from featureledger.store._splits import UNASSIGNED, assign

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TTL = timedelta(days=2)


def entity_frame(n: int, seed: int = 0, users: int = 25) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "user_id": rng.integers(0, users, n),
            "event_timestamp": pa.array(
                [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 60, n)],
                pa.timestamp("us", "UTC"),
            ),
            "region": rng.choice(["north", "south", "east"], n),
            "y": rng.integers(0, 2, n),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    user = Entity("user", join_keys=["user_id"])
    g = FeatureGroup(
        "g", user, features=[Field("x", "float64"), Field("age_band", "string")], ttl=TTL
    )
    s.apply([user, g, FeatureView("v", [g], helpers=["region"])])
    times = [T0 + timedelta(days=d) for d in range(0, 61, 1)]
    s.ingest(
        "g",
        {
            "user_id": [u for _ in times for u in range(25)],
            "event_timestamp": [t for t in times for _ in range(25)],
            "x": [float(u + d) for d in range(len(times)) for u in range(25)],
            "age_band": [("young", "old")[u % 2] for _ in times for u in range(25)],
        },
    )
    return s


# -- the assignment rules, property-tested on their own -------------------------------------


def _rows(times: list[int], keys: list[int], labels: list[int]) -> pa.Table:
    return pa.table(
        {
            "k": pa.array(keys, pa.int64()),
            "t": pa.array([T0 + timedelta(minutes=m) for m in times], pa.timestamp("us", "UTC")),
            "y": pa.array(labels, pa.int64()),
        }
    )


fractions = st.sampled_from([(0.8, 0.2), (0.5, 0.5), (0.7, 0.15, 0.15), (0.6, 0.2, 0.2)])
frames = st.integers(0, 200).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 5000), min_size=n, max_size=n),
        st.lists(st.integers(0, 30), min_size=n, max_size=n),
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
    )
)


def _run(rows: pa.Table, spec: Split, gap: timedelta = timedelta(0)) -> np.ndarray:
    return assign(rows, spec, label="y", keys=["k"], timestamp_column="t", gap=gap, where="test")


@settings(max_examples=60, deadline=None)
@given(frames, fractions, st.integers(0, 2**40), st.sampled_from(["random", "stratified", "group"]))
def test_parts_partition_the_rows_and_are_reproducible(frame, fr, seed, kind) -> None:
    rows = _rows(*frame)
    spec = getattr(Split, kind)(*fr, seed=seed)
    parts = _run(rows, spec)
    # every row in exactly one part (no gaps outside time splits)
    assert parts.shape == (rows.num_rows,)
    assert set(parts.tolist()) <= set(range(len(fr)))
    # the same spec on the same rows: the same parts
    assert np.array_equal(parts, _run(rows, spec))
    if kind == "random":
        # exact sizes: rounded cumulative fractions
        n = rows.num_rows
        cum = [round(sum(fr[: i + 1]) * n) for i in range(len(fr))]
        cum[-1] = n
        sizes = np.bincount(parts, minlength=len(fr)).tolist()
        assert sizes == [b - a for a, b in zip([0, *cum[:-1]], cum, strict=True)]


@settings(max_examples=60, deadline=None)
@given(frames, fractions, st.integers(0, 2**40))
def test_group_split_never_puts_an_entity_in_two_parts(frame, fr, seed) -> None:
    rows = _rows(*frame)
    parts = _run(rows, Split.group(*fr, seed=seed))
    seen: dict[int, int] = {}
    for key, part in zip(rows.column("k").to_pylist(), parts.tolist(), strict=True):
        assert seen.setdefault(key, part) == part


@settings(max_examples=60, deadline=None)
@given(frames, fractions, st.integers(0, 2**40))
def test_stratified_split_keeps_each_label_within_one_row_of_its_share(frame, fr, seed) -> None:
    rows = _rows(*frame)
    parts = _run(rows, Split.stratified(*fr, seed=seed))
    labels = np.array(rows.column("y").to_pylist())
    for value in set(labels.tolist()):
        total = int((labels == value).sum())
        for i, share in enumerate(fr):
            got = int(((labels == value) & (parts == i)).sum())
            assert abs(got - share * total) <= 1, (value, i, got, share * total)


def _reference_time_split(times_us: list[int], fr: tuple[float, ...], gap_us: int) -> list[int]:
    """Plainly: boundaries at the time quantiles, rows in [boundary - gap, boundary) dropped."""
    n = len(times_us)
    ordered = sorted(times_us)
    cum = [round(sum(fr[: i + 1]) * n) for i in range(len(fr))][:-1]
    bounds = [ordered[min(c, n - 1)] for c in cum] if n else [0] * (len(fr) - 1)
    out = []
    for t in times_us:
        part = sum(1 for b in bounds if t >= b)
        if part < len(bounds) and t >= bounds[part] - gap_us:
            part = UNASSIGNED
        out.append(part)
    return out


@settings(max_examples=60, deadline=None)
@given(frames, fractions, st.integers(0, 600))
def test_time_split_leaves_the_gap_empty_and_matches_the_reference(frame, fr, gap_min) -> None:
    rows = _rows(*frame)
    gap = timedelta(minutes=gap_min)
    parts = _run(rows, Split.time(*fr), gap)
    micros = [int((t - T0) / timedelta(microseconds=1)) for t in rows.column("t").to_pylist()]
    assert parts.tolist() == _reference_time_split(micros, fr, gap_min * 60_000_000)
    # no leakage: every row of a later part is more than the gap after every earlier row
    for a in range(len(fr)):
        for b in range(a + 1, len(fr)):
            ta = [m for m, p in zip(micros, parts.tolist(), strict=True) if p == a]
            tb = [m for m, p in zip(micros, parts.tolist(), strict=True) if p == b]
            if ta and tb:
                assert min(tb) - max(ta) > gap_min * 60_000_000


# -- splits recorded by the store -------------------------------------------------------------


def test_time_split_default_gap_is_the_longest_ttl_and_parts_have_identities(
    store: FeatureStore,
) -> None:
    frame = entity_frame(400)
    td = store.training_data("v", frame, split=Split.time(0.7, 0.15, 0.15), label="y")
    about = td.record.params["split"]
    assert about["gap_seconds"] == TTL.total_seconds() == about["min_gap_seconds"]
    assert td.parts == ["train", "validation", "test"]
    test = td.part("test")
    assert str(test.identity) == "training_dataset/v@v1/1:test"
    # the parts and the rows in no part add up to the whole set
    sizes = [len(td.part(p)) for p in td.parts]
    assert sum(sizes) + about["unassigned"] == len(td) == 400
    assert about["unassigned"] > 0
    # parts are ordered in time, more than the gap apart
    train_end = max(td.part("train").to_arrow().column("event_timestamp").to_pylist())
    val_start = min(td.part("validation").to_arrow().column("event_timestamp").to_pylist())
    assert val_start - train_end > TTL
    # read, show and stats by the part's identity
    again = store.training_set("training_dataset/v@v1/1:test")
    assert again.to_arrow().equals(test.to_arrow())
    shown = store.show("training_dataset/v@v1/1:test")
    assert shown["rows"] == len(test) and shown["content_hash"] == test.content
    assert shown["part_of"] == "training_dataset/v@v1/1"
    stats = store.stats("training_dataset/v@v1/1:test")
    assert stats["x"].count == len(test)
    assert store.stats("training_dataset/v@v1/1")["x"].count == 400
    with pytest.raises(NotFoundError, match="parts are"):
        store.training_set("training_dataset/v@v1/1:holdout")


def test_same_spec_on_same_pins_gives_the_same_parts_and_hashes(store: FeatureStore) -> None:
    frame = entity_frame(300, seed=3)
    spec = "group:0.6,0.2,0.2,seed=11"
    first = store.training_data("v", frame, split=spec, label="y")
    second = store.training_data("v", frame, split=Split.parse(spec), label="y")
    assert first.identity != second.identity
    for name in first.parts:
        assert first.part(name).content == second.part(name).content
        assert first.part(name).to_arrow().equals(second.part(name).to_arrow())
    # a different seed gives different parts
    other = store.training_data("v", frame, split="group:0.6,0.2,0.2,seed=12", label="y")
    assert [other.part(n).content for n in other.parts] != [
        first.part(n).content for n in first.parts
    ]


def test_a_gap_shorter_than_the_ttl_is_warned_about_and_kept(store: FeatureStore) -> None:
    with pytest.warns(SplitGapWarning, match=r"shorter than the longest ttl .*\(2d\)"):
        td = store.training_data("v", entity_frame(100), split="time:0.8,0.2,gap=1h")
    assert td.record.params["split"]["gap_seconds"] == 3600
    with warnings.catch_warnings():
        warnings.simplefilter("error", SplitGapWarning)
        store.training_data("v", entity_frame(100), split="time:0.8,0.2,gap=3d")


def test_helpers_and_label_are_kept_apart_from_features(store: FeatureStore) -> None:
    td = store.training_data(
        "v", entity_frame(50), label="y", helpers=["age_band"], split="stratified:0.5,0.5"
    )
    assert td.feature_names == ["x"]
    assert td.label_name == "y"
    assert td.helper_names == ["region", "age_band"]  # the view's, then the call's
    assert td.features().column_names == ["x"]
    assert td.helpers().column_names == ["region", "age_band"]
    assert td.label().to_pylist() == entity_frame(50).column("y").to_pylist()
    # a part carries the same roles
    assert td.part("test").feature_names == ["x"]
    with pytest.raises(SchemaMismatchError, match="nope"):
        store.training_data("v", entity_frame(10), helpers=["nope"])


def test_split_of_a_set_written_to_a_file(store: FeatureStore, tmp_path: Path) -> None:
    out = tmp_path / "set.parquet"
    td = store.training_data("v", entity_frame(120), output=out, split="random:0.75,0.25,seed=2")
    ident = f"{td.identity}:test"
    part = store.training_set(ident)
    assert len(part) == part.to_arrow().num_rows == 30


def test_lineage_and_models_name_a_part(store: FeatureStore, tmp_path: Path) -> None:
    td = store.training_data("v", entity_frame(80), split="random:0.5,0.5", label="y")
    artifact = tmp_path / "m.bin"
    artifact.write_text("w")
    model = store.register_model("m", artifact, training_dataset=td.part("train"))
    assert model.training_dataset == "training_dataset/v@v1/1:train"
    upstream = json.loads(store.lineage("model/m/1", format="json", include_runs=False))
    text = json.dumps(upstream)
    assert "training_dataset/v@v1/1:train" in text and "feature_group/g@v1#1" in text
    impacted = store.impact("feature_group/g@v1#1")
    assert "model/m/1" in impacted.affected.get("model", [])


def test_split_specs_and_identities_are_checked() -> None:
    assert VersionId.parse("training_dataset/v@v1/3:test").split == "test"
    with pytest.raises(IdentityParseError, match="split"):
        VersionId.parse("model/m/3:test")
    with pytest.raises(DefinitionError, match="add up to 1"):
        Split.random(0.5, 0.4)
    with pytest.raises(DefinitionError, match="not understood"):
        Split.parse("cluster:0.5,0.5")
    spec = Split.parse("time:2025-02-01,2025-03-01,gap=2d")
    assert spec.names == ("train", "validation", "test") and spec.gap == timedelta(days=2)
    assert Split.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
