"""A store with registered scikit-learn models, for the batch inference, deployment and
/predict tests: group ``g`` (x, y) behind view ``v``, group ``h`` (z) behind view ``small``,
both online, and models saved with joblib as a user would."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.linear_model import LinearRegression, LogisticRegression

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field

USER = Entity("user", join_keys=["user_id"])
G = FeatureGroup("g", USER, features=[Field("x", "float64"), Field("y", "float64")], online=True)
H = FeatureGroup("h", USER, features=[Field("z", "float64")], online=True)
V = FeatureView("v", [G])
SMALL = FeatureView("small", [H])
N = 60


@dataclass
class Models:
    store: FeatureStore
    t0: datetime
    frame: pa.Table  # the training entity frame
    clf: LogisticRegression  # model/clf/1, on x and y
    clf2: LogisticRegression  # model/clf/2, on x only
    prior: LogisticRegression  # model/prior/1, on z (the simpler fallback)
    reg: LinearRegression  # model/reg/1, on x and y
    tmp: Path


def features(n: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)


def save(model: object, path: Path) -> Path:
    if path.suffix == ".pkl":
        path.write_bytes(pickle.dumps(model))
    else:
        joblib.dump(model, path)
    return path


def make_store(tmp: Path) -> Models:
    store = FeatureStore.init(tmp / "repo")
    store.apply([USER, G, H, V, SMALL])
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    x, y, z = features()
    users = list(range(N))
    store.ingest("g", {"user_id": users, "event_timestamp": [t0] * N, "x": x, "y": y})
    # user 999 has only the small group's feature: the primary lacks features for it
    store.ingest("h", {"user_id": [*users, 999], "event_timestamp": [t0] * (N + 1), "z": [*z, 0.5]})
    frame = pa.table({"user_id": users, "event_timestamp": [t0 + timedelta(minutes=1)] * N})
    td = store.training_data("v", frame)
    td_small = store.training_data("small", frame)
    label = (x + 0.5 * y > 0).astype(int)
    clf = LogisticRegression().fit(pd.DataFrame({"x": x, "y": y}), label)
    clf2 = LogisticRegression(C=0.1).fit(pd.DataFrame({"x": x}), label)
    prior = LogisticRegression().fit(pd.DataFrame({"z": z}), label)
    reg = LinearRegression().fit(pd.DataFrame({"x": x, "y": y}), 2 * x - y)
    store.register_model("clf", save(clf, tmp / "clf.joblib"), training_dataset=td)
    store.register_model("clf", save(clf2, tmp / "clf2.joblib"), training_dataset=td)
    store.register_model("prior", save(prior, tmp / "prior.joblib"), training_dataset=td_small)
    store.register_model("reg", save(reg, tmp / "reg.joblib"), training_dataset=td)
    broken = LogisticRegression().fit(pd.DataFrame({"x": x, "y": y}), label)
    broken.coef_ = np.zeros((1, 3))  # a real model that raises when it predicts
    store.register_model("broken", save(broken, tmp / "broken.pkl"), training_dataset=td)
    store.materialize()
    return Models(store, t0, frame, clf, clf2, prior, reg, tmp)
