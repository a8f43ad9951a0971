"""On-demand transforms: the same function computes the same values offline (training data)
and online (get_online_features), with request data, on both online stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.definitions.feature_view import OnDemand
from featureledger.errors import BreakingChangeError, DefinitionError, SchemaMismatchError

T0 = datetime(2025, 1, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
STATS = FeatureGroup(
    "stats", USER, features=[Field("avg_amount", "float64")], ttl=timedelta(days=1), online=True
)


def amount_ratio(t: pa.Table) -> dict[str, pa.Array]:
    ratio = pc.divide(t.column("amount"), t.column("avg_amount"))
    return {"amount_ratio": ratio, "is_large": pc.greater(ratio, 3.0)}


RATIO = OnDemand(
    "amount_ratio",
    amount_ratio,
    outputs=[Field("amount_ratio", "float64"), Field("is_large", "bool")],
    request=[Field("amount", "float64")],
)
VIEW = FeatureView("scoring", [STATS], on_demand=[RATIO])


@pytest.fixture
def store(repo_store: FeatureStore) -> FeatureStore:
    s = repo_store
    s.apply([USER, STATS, VIEW])
    rng = np.random.default_rng(3)
    s.ingest(
        "stats",
        {
            "user_id": np.arange(50),
            "event_timestamp": [T0] * 50,
            "avg_amount": rng.uniform(5, 50, 50),
        },
    )
    s.materialize()
    return s


def test_offline_equals_online_with_request_data(store: FeatureStore) -> None:
    now = T0 + timedelta(hours=1)
    users = np.array([3, 7, 7, 49, 60])  # 60 is unknown: NULL feature, NULL ratio
    amounts = np.array([10.0, 500.0, 1.0, 80.0, 5.0])
    offline = store.training_data(
        "scoring",
        pa.table(
            {
                "user_id": users,
                "event_timestamp": [now] * len(users),
                "amount": amounts,
            }
        ),
    ).to_arrow()
    online = store.get_online_features(
        "scoring", {"user_id": users}, request_data={"amount": amounts}, now=now
    ).to_arrow()
    for column in ("avg_amount", "amount_ratio", "is_large"):
        assert online.column(column).to_pylist() == offline.column(column).to_pylist(), column
    assert offline.column("amount_ratio").null_count == 1
    assert offline.schema.field("is_large").type == pa.bool_()
    assert "amount_ratio" in store.training_datasets("scoring")[0].columns


def test_the_function_comes_from_definitions_with_the_registered_code(
    store: FeatureStore,
) -> None:
    fresh = FeatureStore(store.repo)  # a new process: only the code hash is registered
    entities = pa.table({"user_id": [1], "event_timestamp": [T0], "amount": [1.0]})
    with pytest.raises(DefinitionError, match="no function loaded"):
        fresh.training_data("scoring", entities)
    fresh.use_definitions([VIEW])
    assert fresh.training_data("scoring", entities).record.rows == 1


def test_missing_request_field_and_breaking_output_removal(store: FeatureStore) -> None:
    with pytest.raises(SchemaMismatchError, match="amount"):
        store.training_data("scoring", pa.table({"user_id": [1], "event_timestamp": [T0]}))
    narrower = OnDemand(
        "amount_ratio",
        amount_ratio,
        outputs=[Field("amount_ratio", "float64")],
        request=[Field("amount", "float64")],
    )
    with pytest.raises(BreakingChangeError, match="is_large"):
        store.apply([FeatureView("scoring", [STATS], on_demand=[narrower])])
