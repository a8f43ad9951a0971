"""Definitions are pure values: validated on construction, serializable, comparable."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pyarrow as pa
import pytest

from featureledger import Entity, FeatureGroup, FeatureView, Field, VersionId
from featureledger.definitions import ViewSource, parse_type, type_name
from featureledger.definitions.types import TIMESTAMP, is_widening
from featureledger.errors import DefinitionError, IdentityParseError, InvalidNameError
from featureledger.versioning import compat

USER = Entity("user", join_keys=["user_id"])


def group(**kwargs) -> FeatureGroup:
    base = {"name": "stats", "entity": USER, "features": [Field("clicks", "int64"), "spend"]}
    base.update(kwargs)
    return FeatureGroup(**base)


# -- entities and fields --------------------------------------------------------------------


def test_entity_defaults_to_one_int64_key_named_after_it() -> None:
    e = Entity("card")
    assert e.key_names == ("card_id",)
    assert e.key_fields[0].dtype == pa.int64()
    assert Entity("card", join_keys=["a", Field("b", "string")]).key_fields[1].dtype == pa.string()
    assert Entity("card", dtype="string").key_fields[0].dtype == pa.string()
    assert str(e.identity) == "entity/card"


def test_entity_keys_must_be_distinct() -> None:
    with pytest.raises(DefinitionError, match="repeat a name"):
        Entity("pair", join_keys=["a", "a"])


def test_field_types_parse_to_one_spelling() -> None:
    assert Field("x").dtype == pa.float64()
    assert Field("x", "double").dtype == pa.float64()
    assert Field("x", "float").dtype == pa.float32()
    assert Field("x", "list<float32>").dtype == pa.list_(pa.float32())
    assert Field("x", pa.large_string()).dtype == pa.string()
    assert Field("x", pa.timestamp("ns")).dtype == TIMESTAMP
    assert Field("x", " Int32 ").dtype == pa.int32()
    for name in ["bool", "int8", "uint64", "string", "binary", "date", "timestamp", "list<string>"]:
        assert type_name(parse_type(name)) == name


@pytest.mark.parametrize(
    "bad",
    [
        "decimal",
        "list<list<int8>>",
        "map<string,int8>",
        3,
        pa.decimal128(10, 2),
        pa.struct([("a", pa.int8())]),
    ],
)
def test_unsupported_types_are_refused(bad) -> None:
    with pytest.raises(DefinitionError):
        Field("x", bad)


def test_field_classification_is_checked() -> None:
    assert Field("email", "string", classification="pii").to_dict()["classification"] == "pii"
    with pytest.raises(DefinitionError, match="classification 'secret'"):
        Field("x", classification="secret")  # type: ignore[arg-type]


# -- feature groups -------------------------------------------------------------------------


def test_group_columns_schema_and_keys() -> None:
    fg = group(created_time="created")
    assert [c.name for c in fg.columns] == [
        "user_id",
        "event_timestamp",
        "created",
        "clicks",
        "spend",
    ]
    schema = fg.arrow_schema
    assert schema.field("user_id").nullable is False
    assert schema.field("event_timestamp").nullable is False
    assert schema.field("event_timestamp").type == TIMESTAMP
    assert schema.field("created").nullable is True
    assert schema.field("spend").type == pa.float64()  # features default to float64
    assert fg.unique_key == ("user_id", "event_timestamp")
    assert group(event_time=None).unique_key == ("user_id",)
    assert group(event_time=None).is_static


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": []}, "at least one feature"),
        ({"created_time": "created", "event_time": None}, "created_time needs an event_time"),
        ({"ttl": timedelta(0)}, "ttl must be a positive timedelta"),
        ({"ttl": 3600}, "ttl must be a positive timedelta"),
        ({"ttl": timedelta(days=1), "event_time": None}, "cannot have a ttl"),
        ({"version": 0}, "version must be an integer >= 1"),
        ({"version": "2"}, "version must be an integer >= 1"),
        ({"features": ["user_id"]}, "used twice: ['user_id']"),
        ({"features": ["event_timestamp"]}, "used twice"),
        ({"features": ["a", "a"]}, "used twice: ['a']"),
        ({"entity": "user"}, "must be an Entity"),
        ({"entity": []}, "must be an Entity"),
    ],
)
def test_malformed_groups_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(DefinitionError) as info:
        group(**kwargs)
    assert message in str(info.value)
    assert "'stats'" in str(info.value)


def test_two_entities_sharing_a_key_name_are_refused() -> None:
    with pytest.raises(DefinitionError, match="used twice"):
        group(entity=[USER, Entity("other", join_keys=["user_id"])])


def test_group_round_trips_through_its_dict() -> None:
    fg = group(
        created_time="created",
        ttl=timedelta(hours=6),
        online=True,
        owner="o",
        description="d",
        tags={"b": "2", "a": "1"},
        licenses=["cc-by"],
        features=[
            Field("clicks", "int32", description="c", tags={"x": "y"}),
            Field("email", "string", classification="pii"),
        ],
        entity=[USER, Entity("merchant", join_keys=[Field("merchant_id", "string")])],
    )
    back = FeatureGroup.from_dict(fg.to_dict(), 3)
    assert back.to_dict() == fg.to_dict()
    assert back.version == 3
    assert back.ttl == timedelta(hours=6)
    assert list(fg.to_dict()["tags"]) == ["a", "b"]  # canonical order
    assert compat.classify_group(fg.to_dict(), back.to_dict()).level == "none"


def test_selections_check_their_features_and_keys() -> None:
    fg = group()
    assert fg[["clicks"]].features == ("clicks",)
    assert fg["clicks"].features == ("clicks",)
    assert fg.select().features == ("clicks", "spend")
    with pytest.raises(DefinitionError, match=r"no feature\(s\) \['nope'\]"):
        fg[["nope"]]
    with pytest.raises(DefinitionError, match="not join keys"):
        fg.select(join_key_map={"account_id": "x"})
    assert fg.select(join_key_map={"user_id": "payer_id"}).join_key_map == {"user_id": "payer_id"}


# -- feature views --------------------------------------------------------------------------


def test_view_collects_sources() -> None:
    other = FeatureGroup("other", USER, features=["x"], version=2)
    view = FeatureView("fraud", [group()[["clicks"]], other])
    assert view.sources == (ViewSource("stats", ("clicks",), None), ViewSource("other", ("x",), 2))
    assert FeatureView.from_dict(view.to_dict(), 1).to_dict() == view.to_dict()
    assert view.output_name(view.sources[0], "clicks") == "clicks"
    full = FeatureView("fraud", [group()], full_feature_names=True)
    assert full.output_name(full.sources[0], "clicks") == "stats__clicks"


def test_malformed_views_are_refused() -> None:
    other = FeatureGroup("other", USER, features=["clicks"])
    with pytest.raises(DefinitionError, match=r"\['clicks'\] come from more than one group"):
        FeatureView("v", [group(), other])
    assert FeatureView("v", [group(), other], full_feature_names=True)
    with pytest.raises(DefinitionError, match="selected twice"):
        FeatureView("v", [group()["clicks"], group()["spend"]])
    with pytest.raises(DefinitionError, match="select at least one"):
        FeatureView("v", [])
    with pytest.raises(DefinitionError, match="must be FeatureGroups or selections"):
        FeatureView("v", ["stats"])  # type: ignore[list-item]
    with pytest.raises(DefinitionError, match="version"):
        FeatureView("v", [group()], version=0)


# -- identities -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "entity/user",
        "feature_group/user_stats",
        "feature_group/user_stats@v2",
        "feature_group/user_stats@v2#17",
        "feature_view/fraud@v1",
        "training_dataset/fraud@v1/3",
        "model/fraud_xgb/4",
        "deployment/fraud",
        f"run/{uuid.UUID(int=0)}",
        f"run/{uuid.UUID('9f1c0a52-0000-4000-8000-000000000000')}",
    ],
)
def test_identities_print_and_parse(text: str) -> None:
    ident = VersionId.parse(text)
    assert str(ident) == text
    assert VersionId.parse(f"  {text}\n") == ident


def test_identity_parts() -> None:
    ident = VersionId.parse("feature_group/user_stats@v2#17")
    assert (ident.kind, ident.name, ident.major, ident.data) == (
        "feature_group",
        "user_stats",
        2,
        17,
    )
    assert str(ident.without_data()) == "feature_group/user_stats@v2"
    assert VersionId.parse("training_dataset/fraud@v1/3").number == 3
    assert group().identity(2) == VersionId("feature_group", "stats", 2)


@pytest.mark.parametrize(
    "text",
    [
        "user",
        "widget/user",
        "feature_group/",
        "feature_group/a b",
        "feature_group/x@v",
        "feature_view/fraud#3",
        "feature_group/../etc",
        "feature_group/1abc",
        "entity/a;b",
    ],
)
def test_bad_identities_are_refused(text: str) -> None:
    with pytest.raises(IdentityParseError):
        VersionId.parse(text)


# -- change rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "widening"),
    [
        ("int8", "int64", True),
        ("int32", "int64", True),
        ("int32", "float64", True),
        ("float32", "float64", True),
        ("uint32", "int64", True),
        ("list<int32>", "list<int64>", True),
        ("int64", "int32", False),
        ("float64", "float32", False),
        ("int64", "float64", False),
        ("int32", "float32", False),
        ("uint64", "int64", False),
        ("string", "binary", False),
        ("int64", "string", False),
    ],
)
def test_widening_is_only_lossless(old: str, new: str, widening: bool) -> None:
    assert is_widening(parse_type(old), parse_type(new)) is widening


def test_change_levels() -> None:
    base = group().to_dict()

    def level(**kwargs) -> str:
        return compat.classify_group(base, group(**kwargs).to_dict()).level

    assert level() == "none"
    assert level(description="x") == "patch"
    assert level(features=[Field("spend"), Field("clicks", "int64")]) == "patch"  # reordered
    assert level(features=[Field("clicks", "int64"), "spend", "new"]) == "minor"
    assert level(ttl=timedelta(days=1)) == "minor"
    assert (
        level(features=[Field("clicks", "int64"), Field("spend", classification="pii")]) == "minor"
    )
    assert level(features=[Field("clicks", "int64")]) == "major"
    assert level(features=[Field("clicks", "int32"), "spend"]) == "major"
    assert level(event_time="ts") == "major"
    assert level(entity=Entity("user", join_keys=[Field("user_id", "string")])) == "major"


def test_bump() -> None:
    assert compat.bump((1, 2, 3), "minor") == (1, 3, 0)
    assert compat.bump((1, 2, 3), "patch") == (1, 2, 4)
    assert compat.bump((1, 2, 3), "none") == (1, 2, 3)


def test_invalid_name_error_carries_its_fields() -> None:
    with pytest.raises(InvalidNameError) as info:
        Field("x;drop table")
    assert info.value.what == "column" and info.value.name == "x;drop table"
