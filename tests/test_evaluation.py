"""Model validation by featureledger: metrics on a split, per slice, slice gates, the CLI."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.cli.main import app
from featureledger.contracts.gates import SliceGate, parse_gate
from featureledger.errors import DataError, GateError, NotFoundError, SplitGapWarning
from featureledger.monitoring.evaluation import evaluate_arrays

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USERS = 60


# -- a plain reference for every metric ------------------------------------------------------


def ref_auc(y: list[int], s: list[float]) -> float | None:
    """The probability that a random positive scores above a random negative (ties half)."""
    pos = [v for v, t in zip(s, y, strict=True) if t == 1]
    neg = [v for v, t in zip(s, y, strict=True) if t == 0]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def ref_f1(y: list[int], s: list[float], threshold: float = 0.5) -> float:
    tp = sum(1 for t, v in zip(y, s, strict=True) if t == 1 and v >= threshold)
    fp = sum(1 for t, v in zip(y, s, strict=True) if t == 0 and v >= threshold)
    fn = sum(1 for t, v in zip(y, s, strict=True) if t == 1 and v < threshold)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def ref_log_loss(y: list[int], s: list[float]) -> float:
    eps = 1e-15
    clipped = [min(max(v, eps), 1 - eps) for v in s]
    return -sum(
        math.log(p) if t == 1 else math.log(1 - p) for t, p in zip(y, clipped, strict=True)
    ) / len(y)


def ref_ece(y: list[int], s: list[float], bins: int = 10) -> float:
    total = 0.0
    for b in range(bins):
        idx = [i for i, v in enumerate(s) if min(int(v * bins), bins - 1) == b]
        if idx:
            gap = abs(sum(s[i] for i in idx) / len(idx) - sum(y[i] for i in idx) / len(idx))
            total += gap * len(idx)
    return total / len(y)


def ref_classification(y: list[int], s: list[float]) -> dict[str, float | None]:
    return {
        "auc": ref_auc(y, s),
        "f1": ref_f1(y, s),
        "log_loss": ref_log_loss(y, s),
        "ece": ref_ece(y, s),
    }


def ref_regression(y: list[float], p: list[float]) -> dict[str, float]:
    err = [a - b for a, b in zip(y, p, strict=True)]
    return {
        "mae": sum(abs(e) for e in err) / len(err),
        "rmse": math.sqrt(sum(e * e for e in err) / len(err)),
    }


def close(got: dict, want: dict) -> None:
    for key, value in want.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def per_slice(regions: list[str], y: list, s: list, reference) -> dict[str, dict]:
    out = {}
    for value in sorted(set(regions)):
        idx = [i for i, r in enumerate(regions) if r == value]
        out[f"region={value}"] = reference([y[i] for i in idx], [s[i] for i in idx])
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.floats(0, 1, allow_nan=False), st.sampled_from("abc")),
        min_size=1,
        max_size=60,
    )
)
def test_classification_metrics_match_the_reference_whole_and_per_slice(rows) -> None:
    y = [r[0] for r in rows]
    s = [r[1] for r in rows]
    regions = [r[2] for r in rows]
    result = evaluate_arrays("classification", np.array(y), np.array(s), {"region": regions})
    close(result.metrics, ref_classification(y, s))
    want = per_slice(regions, y, s, ref_classification)
    assert {x.name for x in result.slices} == set(want)
    for figures in result.slices:
        close(figures.metrics, want[figures.name])
        assert figures.rows == regions.count(figures.value)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(-1e3, 1e3, allow_nan=False),
            st.floats(-1e3, 1e3, allow_nan=False),
            st.sampled_from("xy"),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_regression_metrics_match_the_reference_whole_and_per_slice(rows) -> None:
    y = [r[0] for r in rows]
    p = [r[1] for r in rows]
    regions = [r[2] for r in rows]
    result = evaluate_arrays("regression", np.array(y), np.array(p), {"region": regions})
    close(result.metrics, ref_regression(y, p))
    want = per_slice(regions, y, p, ref_regression)
    for figures in result.slices:
        close(figures.metrics, want[figures.name])


# -- the store: a real model on a recorded split ---------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    """Users with a feature ``x``; the label follows ``x`` closely in the north and is
    noise in the south, so a model is good overall and bad on one slice."""
    s = FeatureStore.init(tmp_path / "repo")
    user = Entity("user", join_keys=["user_id"])
    g = FeatureGroup("g", user, features=[Field("x", "float64")], ttl=timedelta(days=30))
    s.apply([user, g, FeatureView("v", [g], helpers=["region"])])
    rng = np.random.default_rng(5)
    s.ingest(
        "g",
        {
            "user_id": list(range(USERS)),
            "event_timestamp": [T0] * USERS,
            "x": rng.normal(size=USERS).tolist(),
        },
    )
    return s


def frame(store: FeatureStore, n: int = 600) -> pa.Table:
    rng = np.random.default_rng(9)
    users = rng.integers(0, USERS, n)
    x = store.read("g").sort_by("user_id").column("x").to_numpy()[users]
    region = np.where(users % 3 == 0, "south", "north")
    noise = rng.normal(scale=0.3, size=n)
    y = np.where(region == "north", (x + noise) > 0, rng.random(n) > 0.5).astype(np.int64)
    return pa.table(
        {
            "user_id": users,
            "event_timestamp": pa.array(
                [T0 + timedelta(hours=int(h)) for h in rng.integers(1, 24 * 20, n)],
                pa.timestamp("us", "UTC"),
            ),
            "region": region,
            "y": y,
            "amount": rng.gamma(2.0, 10.0, n) + 5 * x,
        }
    )


@pytest.fixture
def trained(store: FeatureStore):
    td = store.training_data(
        "v", frame(store), label="y", helpers=["amount"], split="stratified:0.7,0.3,seed=1"
    )
    train = td.part("train")
    model = LogisticRegression().fit(train.features().to_pandas(), train.label().to_numpy())
    return td, model


def test_evaluate_scores_the_model_on_the_test_split_and_each_slice(store, trained) -> None:
    td, model = trained
    result = store.evaluate(model, td, split="test", slices=["region"])
    test = td.part("test")
    rows = test.to_arrow()
    assert result.training_set == f"{td.identity}:test" and result.rows == len(test)
    assert result.task == "classification"
    # the reference, computed plainly from the model's probabilities
    proba = model.predict_proba(test.features().to_pandas())[:, 1].tolist()
    y = rows.column("y").to_pylist()
    close(result.metrics, ref_classification(y, proba))
    want = per_slice(rows.column("region").to_pylist(), y, proba, ref_classification)
    for figures in result.slices:
        close(figures.metrics, want[figures.name])
    by = {s.name: s.metrics["auc"] for s in result.slices}
    assert by["region=north"] > 0.9 and by["region=south"] < 0.75
    assert len(result.calibration["predicted"]) == len(result.calibration["observed"]) > 0


def test_predictions_and_a_registered_model_give_the_same_figures(
    store, trained, tmp_path: Path
) -> None:
    td, model = trained
    direct = store.evaluate(model, td, slices=["region"])
    test = td.part("test")
    proba = model.predict_proba(test.features().to_pandas())[:, 1]
    frame_result = store.evaluate(pa.table({"probability": proba}), td, slices=["region"])
    assert frame_result.metrics == direct.metrics
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    store.register_model("clf", path, training_dataset=td.part("train"))
    registered = store.evaluate("model/clf/1", f"{td.identity}:test", slices=["region"])
    assert registered.metrics == direct.metrics and registered.model == "model/clf/1"
    with pytest.raises(DataError, match="predictions for"):
        store.evaluate(proba[:-1], td)
    with pytest.raises(DataError, match="helpers"):
        store.evaluate(model, td, slices=["nope"])
    bare = store.training_data("v", frame(store, 20), label="y")
    with pytest.raises(NotFoundError, match="no parts"):
        store.evaluate(model, bare)


def test_a_slice_gate_refuses_registration_naming_the_slice(store, trained, tmp_path: Path) -> None:
    td, model = trained
    result = store.evaluate(model, td, slices=["region"])
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    gates = [parse_gate("auc>=0.7"), parse_gate("slice:auc_gap<=0.05")]
    with pytest.raises(GateError, match=r"auc gap .* between region=north .* and region=south"):
        store.register_model("clf", path, evaluation=result, gates=gates)
    assert store.models("clf") == []
    with pytest.raises(GateError, match=r"min auc .* on slice region=south"):
        store.register_model(
            "clf", path, evaluation=result, gates=[parse_gate("slice:min_auc>=0.8")]
        )
    # fixed: the gate only covers the slice the model is meant for
    ok = store.register_model(
        "clf",
        path,
        evaluation=result,
        gates=[parse_gate("auc>=0.7"), parse_gate("slice:max_log_loss<=5")],
    )
    assert ok.training_dataset == str(td.identity)
    assert ok.metrics["evaluation"]["training_set"] == f"{td.identity}:test"
    assert ok.metrics["summary"]["auc"]["mean"] == pytest.approx(result.metrics["auc"])
    assert [g["passed"] for g in ok.gates] == [True, True]


def test_slice_gate_grammar() -> None:
    assert parse_gate("slice:auc_gap<=0.05") == SliceGate("auc", "gap", max=0.05)
    assert parse_gate("slice:min_auc>=0.7") == SliceGate("auc", "min", min=0.7)
    assert parse_gate("slice:max_mae<=3") == SliceGate("mae", "max", max=3.0)
    assert parse_gate("slice.region:min_f1>=0.5") == SliceGate("f1", "min", 0.5, None, "region")
    with pytest.raises(ValueError, match="slice gates are"):
        parse_gate("slice:auc>=0.7")


def test_regression_and_a_max_mae_slice_gate(store: FeatureStore, tmp_path: Path) -> None:
    # the ttl (30 d) is longer than the frame's 20 days: a shorter gap, warned about
    with pytest.warns(SplitGapWarning):
        td = store.training_data("v", frame(store), label="amount", split="time:0.8,0.2,gap=1d")
    train = td.part("train")
    model = LinearRegression().fit(train.features().to_pandas(), train.label().to_numpy())
    result = store.evaluate(model, td, slices=["region"])
    assert result.task == "regression" and set(result.metrics) == {"mae", "rmse"}
    test = td.part("test")
    predicted = model.predict(test.features().to_pandas()).tolist()
    close(result.metrics, ref_regression(test.label().to_pylist(), predicted))
    worst = max(s.metrics["mae"] for s in result.slices)
    failed = result.check([parse_gate(f"slice:max_mae<={worst / 2}")])
    assert not failed[0].passed and "max mae" in failed[0].detail
    assert result.check([parse_gate(f"slice:max_mae<={worst + 1}")])[0].passed


def test_cli_split_and_evaluate_with_gates(store: FeatureStore, trained, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    entities = tmp_path / "entities.parquet"
    pq.write_table(frame(store), entities)
    runner = CliRunner()
    made = runner.invoke(
        app,
        [
            "training-data",
            "v",
            str(entities),
            "-o",
            str(tmp_path / "set.parquet"),
            "--split",
            "stratified:0.7,0.3,seed=1",
            "--label",
            "y",
            "--helper",
            "amount",
            "--repo",
            str(repo),
        ],
    )
    assert made.exit_code == 0, made.output
    assert "training_dataset/v@v1/2:test" in made.output
    _, model = trained
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    store.register_model("clf", path)
    args = ["evaluate", "model/clf/1", "training_dataset/v@v1/2", "--slice", "region"]
    passed = runner.invoke(app, [*args, "--gate", "auc>=0.6", "--repo", str(repo)])
    assert passed.exit_code == 0, passed.output
    assert "region=south" in passed.output and "gate auc >= 0.6" in passed.output
    failed = runner.invoke(app, [*args, "--gate", "slice:auc_gap<=0.05", "--repo", str(repo)])
    assert failed.exit_code == 1
    assert "region=south" in failed.output
