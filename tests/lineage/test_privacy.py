"""PII labels follow pipelines: a column derived from a private column is private unless the
transform declassifies it with a reason; views then need a purpose, tokens the same one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field
from featureledger.definitions import GroupSource, PythonTransform, SQLTransform
from featureledger.errors import AccessDeniedError, DefinitionError
from featureledger.lineage.privacy import effective_classification

T0 = datetime(2025, 3, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
USERS = FeatureGroup(
    "users",
    USER,
    features=[Field("email", "string", classification="pii"), Field("city", "string")],
    online=True,
)
COPY_SQL = "SELECT user_id, event_timestamp, email AS contact, city AS town FROM source"


def copy_group(
    transform: SQLTransform | PythonTransform | None = None, name: str = "contacts"
) -> FeatureGroup:
    return FeatureGroup(
        name,
        USER,
        features=[Field("contact", "string"), Field("town", "string")],
        source=GroupSource("users"),
        transform=transform if transform is not None else SQLTransform(COPY_SQL),
        online=True,
    )


def copy_columns(source: pa.Table, start: datetime, end: datetime) -> pa.Table:
    return pa.table(
        {
            "user_id": source.column("user_id"),
            "event_timestamp": source.column("event_timestamp"),
            "contact": source.column("email"),
            "town": source.column("city"),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    s = FeatureStore.init(tmp_path / "repo")
    s.apply([USER, USERS])
    return s


def test_a_sql_copy_of_a_pii_column_is_pii(store: FeatureStore) -> None:
    store.apply([copy_group()])
    with pytest.raises(DefinitionError, match=r"contacts\.contact: pii, derived .* users\.email"):
        store.apply([FeatureView("leak", [copy_group()])])  # no purpose: refused
    store.apply([FeatureView("towns", [copy_group()[["town"]]])])  # town comes from city
    shown = store.show("feature_group/contacts")["classification"]
    assert (
        set(shown) == {"contact"}
        and "derived by its pipeline from users.email" in (shown["contact"])
    )


def test_labels_follow_chains_and_group_renames_in_one_apply(store: FeatureStore) -> None:
    second = FeatureGroup(
        "contacts2",
        USER,
        features=[Field("contact", "string"), Field("town", "string")],
        source=GroupSource("contacts"),  # no transform: each column copied as it is
    )
    with pytest.raises(DefinitionError, match=r"contacts2\.contact: pii.*contacts\.contact"):
        store.apply([copy_group(), second, FeatureView("leak", [second])])


def test_declassify_needs_a_reason_and_is_shown(store: FeatureStore) -> None:
    with pytest.raises(DefinitionError, match="needs a reason"):
        SQLTransform(COPY_SQL, declassify={"contact": " "})
    with pytest.raises(DefinitionError, match="does not have"):
        copy_group(SQLTransform(COPY_SQL, declassify={"nope": "why"}))
    hashed = copy_group(
        SQLTransform(
            "SELECT user_id, event_timestamp, md5(email) AS contact, city AS town FROM source",
            declassify={"contact": "md5 of the e-mail; a salted lookup table is not kept"},
        )
    )
    store.apply([hashed, FeatureView("hashed", [hashed])])  # no purpose needed
    shown = store.show("feature_group/contacts")["classification"]["contact"]
    assert "declassified" in shown and "salted lookup table is not kept" in shown
    assert "users.email" in shown


def test_python_transforms_declare_their_inputs(store: FeatureStore) -> None:
    undeclared = copy_group(PythonTransform(copy_columns))
    labels = effective_classification(undeclared, lambda n, m: USERS)
    # without declared inputs every output may read every source column
    assert labels["contact"].classification == "pii" and labels["town"].classification == "pii"
    declared = copy_group(PythonTransform(copy_columns, inputs={"town": ["city"]}))
    labels = effective_classification(declared, lambda n, m: USERS)
    assert labels["contact"].classification == "pii"  # still undeclared
    assert labels["town"].classification == "internal"
    store.apply([declared, FeatureView("towns", [declared[["town"]]])])
    assert store.get_feature_group("contacts").transform.inputs == {"town": ("city",)}


def test_serving_a_derived_pii_column_needs_the_views_purpose(store: FeatureStore) -> None:
    store.apply([copy_group(), FeatureView("kyc", [copy_group()], purpose="kyc")])
    store.ingest(
        "users",
        {
            "user_id": [1, 2],
            "event_timestamp": [T0, T0],
            "email": ["a@x.io", "b@x.io"],
            "city": ["Oslo", "Lyon"],
        },
    )
    store.run_pipeline("contacts", start=T0 - timedelta(days=1), end=T0 + timedelta(days=1))
    store.materialize()
    nobody = store.check_token(store.create_token("reader", ["kyc"]))
    near = store.check_token(store.create_token("reader", ["kyc"], purpose="kyc-review"))
    exact = store.check_token(store.create_token("reader", ["kyc"], purpose="kyc"))
    with pytest.raises(AccessDeniedError, match=r"\['contact'\]"):
        store.authorize_read(nobody, "kyc")
    with pytest.raises(AccessDeniedError, match="not the view's purpose 'kyc'"):
        store.authorize_read(near, "kyc")
    store.authorize_read(exact, "kyc")
    got = store.get_online_features("kyc", [{"user_id": 2}], now=T0 + timedelta(hours=1))
    assert got.to_pylist()[0]["contact"] == "b@x.io"


# -- property: labels along a random chain of pipelines, against a plain reference --------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["copy", "sql", "declassify", "python"]), min_size=1, max_size=6))
def test_a_chain_of_pipelines_keeps_pii_until_declassified(steps: list[str]) -> None:
    base = FeatureGroup(
        "g0",
        USER,
        features=[Field("email", "string", classification="pii"), Field("city", "string")],
    )
    groups = {"g0": base}
    for i, step in enumerate(steps, start=1):
        query = "SELECT user_id, event_timestamp, email, city FROM source"
        transform: SQLTransform | PythonTransform | None = {
            "copy": None,
            "sql": SQLTransform(query),
            "declassify": SQLTransform(query, declassify={"email": "tokenized upstream"}),
            "python": PythonTransform(copy_columns, inputs={"city": ["city"]}),
        }[step]
        groups[f"g{i}"] = FeatureGroup(
            f"g{i}",
            USER,
            features=[Field("email", "string"), Field("city", "string")],
            source=GroupSource(f"g{i - 1}"),
            transform=transform,
        )
    labels = effective_classification(groups[f"g{len(steps)}"], lambda n, m: groups[n])
    # reference: pii flows down the chain until a step declassifies it
    expected = "internal" if "declassify" in steps else "pii"
    assert labels["email"].classification == expected
    assert labels["city"].classification == "internal"
