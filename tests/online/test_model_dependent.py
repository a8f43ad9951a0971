"""Model-dependent transforms: fitted once on a training set, stored as a versioned artifact
linked to it, and applied identically to training rows and to served rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.errors import IntegrityError
from featureledger.transforms.model_dependent import (
    FittedTransforms,
    LabelEncoder,
    MinMaxScaler,
    OneHot,
    SklearnTransform,
    StandardScaler,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
G = FeatureGroup(
    "g",
    USER,
    features=[Field("spend", "float64"), Field("tier", "string")],
    ttl=timedelta(days=1),
    online=True,
)
STEPS = [StandardScaler(["spend"]), OneHot("tier"), LabelEncoder("tier")]


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    s.apply([USER, G, FeatureView("v", [G])])
    rng = np.random.default_rng(1)
    s.ingest(
        "g",
        {
            "user_id": np.arange(20),
            "event_timestamp": [T0] * 20,
            "spend": rng.normal(50, 10, 20),
            "tier": ["gold", "silver", None, "bronze"] * 5,
        },
    )
    s.materialize()
    return s


def test_fit_once_apply_offline_and_online_identically(store: FeatureStore) -> None:
    entities = pa.table({"user_id": np.arange(20), "event_timestamp": [T0] * 20})
    td = store.training_data("v", entities)
    record = store.fit_transforms("g_prep", td, STEPS)
    assert record.training_dataset == str(td.identity)
    fitted = store.load_transforms(str(record.identity))
    train = fitted.apply(td.to_arrow())
    spend = train.column("spend").to_numpy()
    assert abs(spend.mean()) < 1e-9 and abs(spend.std() - 1) < 1e-9
    assert train.column("tier=gold").to_pylist()[:4] == [1, 0, 0, 0]
    assert train.column("tier").to_pylist()[:4] == [1, 2, None, 0]  # bronze, gold, silver
    served = fitted.apply(
        store.get_online_features("v", {"user_id": np.arange(20)}, now=T0).to_arrow()
    )
    for column in ("spend", "tier", "tier=gold", "tier=silver", "tier=bronze"):
        assert served.column(column).to_pylist() == train.column(column).to_pylist(), column
    # the artifact is linked to its training set in lineage
    assert "training_dataset/v@v1/1" in store.lineage(str(record.identity))


def test_unseen_categories_and_ranges_keep_the_training_state() -> None:
    train = pa.table({"x": [0.0, 10.0], "c": ["a", "b"]})
    fitted = FittedTransforms.fit([MinMaxScaler(["x"]), OneHot("c"), LabelEncoder("c")], train)
    out = fitted.apply(pa.table({"x": [5.0, 20.0], "c": ["b", "zzz"]}))
    assert out.column("x").to_pylist() == [0.5, 2.0]  # not refitted on serving data
    assert out.column("c").to_pylist() == [1, -1]
    assert out.column("c=a").to_pylist() == [0, 0]
    again = FittedTransforms.from_json(fitted.to_json())
    assert again.apply(pa.table({"x": [5.0], "c": ["a"]})).column("c").to_pylist() == [0]


class Centre:
    """A minimal scikit-learn style transformer (module level, so it pickles)."""

    def fit(self, x: np.ndarray) -> Centre:
        self.mean_ = x.mean(axis=0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return x - self.mean_


def test_sklearn_style_hook() -> None:
    fitted = FittedTransforms.fit([SklearnTransform(Centre(), ["a"])], pa.table({"a": [1.0, 3.0]}))
    out = FittedTransforms.from_json(fitted.to_json()).apply(pa.table({"a": [2.0, 4.0]}))
    assert out.column("a").to_pylist() == [0.0, 2.0]


def test_tampered_artifact_is_refused(store: FeatureStore) -> None:
    td = store.training_data("v", pa.table({"user_id": [1], "event_timestamp": [T0]}))
    record = store.fit_transforms("g_prep", td, [StandardScaler(["spend"])])
    Path(record.artifact_path).write_text('{"format": 1, "steps": []}')
    with pytest.raises(IntegrityError):
        store.load_transforms(str(record.identity))
