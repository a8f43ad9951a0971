"""`apply` and `plan`: semantic definition versions and what each change does to storage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from featureledger import Entity, FeatureGroup, FeatureStore, FeatureView, Field, content_hash
from featureledger.errors import BreakingChangeError, DefinitionError, NotFoundError

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
USER = Entity("user", join_keys=["user_id"])


def group(*features: Field, **kwargs) -> FeatureGroup:
    feats = features or (Field("clicks", "int32"), Field("spend", "float32"))
    return FeatureGroup("stats", kwargs.pop("entity", USER), features=list(feats), **kwargs)


BASE = group()


def batch(n: int = 3) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(range(n), pa.int64()),
            "event_timestamp": pa.array([T0 + timedelta(hours=i) for i in range(n)], TS),
            "clicks": pa.array(range(10, 10 + n), pa.int32()),
            "spend": pa.array([0.5 * i for i in range(n)], pa.float32()),
        }
    )


@pytest.fixture
def applied(store: FeatureStore) -> FeatureStore:
    store.apply([USER, BASE])
    store.ingest("stats", batch())
    return store


def semver(
    store: FeatureStore, kind: str = "feature_group", name: str = "stats", major: int | None = None
) -> str:
    rec = store.registry.latest_definition(kind, name, major)
    assert rec is not None
    return rec.semver


def snapshot(store: FeatureStore) -> tuple:
    """Everything apply could change: definitions, data versions, audit length, rows."""
    defs = [
        (d.kind, d.name, d.semver)
        for k in ("entity", "feature_group", "feature_view")
        for d in store.list_definitions(k)
    ]
    versions = [(v.version, str(v.content)) for v in store.versions("stats")]
    return defs, versions, len(store.registry.audit_log()), store.read("stats")


# -- create and no-op ----------------------------------------------------------------------------


def test_first_apply_creates_version_1_0_0_and_empty_storage(store: FeatureStore) -> None:
    plan = store.apply([USER, BASE])
    assert [(i.identity, i.action, i.after) for i in plan.items] == [
        ("entity/user", "create", "1.0.0"),
        ("feature_group/stats@v1", "create", "1.0.0"),
    ]
    assert semver(store) == "1.0.0" and semver(store, "entity", "user") == "1.0.0"
    (v0,) = store.versions("stats")
    assert (v0.version, v0.operation, v0.rows) == (0, "create", 0)
    assert store.read("stats").schema == BASE.arrow_schema


def test_reapplying_the_same_definitions_changes_nothing(applied: FeatureStore) -> None:
    before = snapshot(applied)
    plan = applied.apply([USER, group()])
    assert {i.action for i in plan.items} == {"unchanged"}
    assert plan.changes == [] and plan.refused == []
    after = snapshot(applied)
    assert after[:3] == before[:3] and after[3].equals(before[3])


def test_entity_is_applied_with_its_group(store: FeatureStore) -> None:
    store.apply([BASE])  # the entity comes along
    assert store.get_entity("user") == USER


# -- minor: additive and widening ------------------------------------------------------------


def test_adding_a_feature_is_minor_and_old_rows_read_null(applied: FeatureStore) -> None:
    before = applied.versions("stats")[-1]
    new = group(Field("clicks", "int32"), Field("spend", "float32"), Field("country", "string"))
    plan = applied.apply([USER, new])
    (item,) = plan.changes
    assert (item.action, item.before, item.after, item.level) == (
        "update",
        "1.0.0",
        "1.1.0",
        "minor",
    )
    assert "column 'country' added [minor]" in item.reasons
    assert semver(applied) == "1.1.0"

    latest = applied.versions("stats")[-1]
    assert latest.version == before.version + 1
    assert latest.operation == "add-columns"
    assert latest.content == before.content  # null cells add nothing to the hash
    table = applied.read("stats")
    assert table.column("country").to_pylist() == [None, None, None]
    assert table.column("clicks").to_pylist() == [10, 11, 12]
    assert content_hash(table) == latest.content
    # the previous data version still reads with its own columns
    assert "country" not in applied.read("stats", version=before.version).column_names

    # and the new column can be written
    applied.ingest("stats", batch(1).append_column("country", pa.array(["DE"])))
    got = applied.read("stats").to_pylist()
    assert [r["country"] for r in got if r["user_id"] == 0] == ["DE"]
    assert applied.versions("stats")[-1].content == content_hash(applied.read("stats"))


@pytest.mark.parametrize(
    ("column", "old", "new", "values"),
    [
        ("clicks", "int32", "int64", [10, 11, 12]),
        ("spend", "float32", "float64", [0.0, 0.5, 1.0]),
    ],
)
def test_widening_is_minor_and_rewrites_storage_keeping_rows(
    applied: FeatureStore, column: str, old: str, new: str, values: list
) -> None:
    before = applied.versions("stats")[-1]
    fields = {"clicks": Field("clicks", "int32"), "spend": Field("spend", "float32")}
    fields[column] = Field(column, new)
    plan = applied.apply([group(*fields.values())])
    (item,) = plan.changes
    assert item.after == "1.1.0"
    assert f"column {column!r} widened from {old} to {new} [minor]" in item.reasons

    latest = applied.versions("stats")[-1]
    assert (latest.version, latest.operation) == (before.version + 1, "widen")
    assert latest.rows == before.rows
    table = applied.read("stats")
    assert table.schema.field(column).type == pa.type_for_alias(new)
    assert table.column(column).to_pylist() == values
    assert latest.content == before.content == content_hash(table)
    assert latest.files  # storage was rewritten, and the new files are recorded
    # old versions keep their old types
    old_table = applied.read("stats", version=before.version)
    assert old_table.schema.field(column).type == pa.type_for_alias(old)
    # values that need the wider type can now be ingested
    big = 2**40 if column == "clicks" else 1e300
    wide = batch(1).set_column(
        batch(1).schema.get_field_index(column), column, pa.array([big], pa.type_for_alias(new))
    )
    applied.ingest("stats", wide)
    assert big in applied.read("stats").column(column).to_pylist()
    assert applied.versions("stats")[-1].content == content_hash(applied.read("stats"))


def test_widening_and_adding_in_one_apply(applied: FeatureStore) -> None:
    before = applied.versions("stats")[-1]
    new = group(Field("clicks", "int64"), Field("spend", "float64"), Field("extra", "bool"))
    applied.apply([new])
    assert semver(applied) == "1.1.0"
    ops = [v.operation for v in applied.versions("stats")[before.version + 1 :]]
    assert ops == ["widen", "add-columns"]
    table = applied.read("stats")
    assert table.schema.field("clicks").type == pa.int64()
    assert table.schema.field("extra").type == pa.bool_()
    assert table.column("extra").null_count == 3
    assert applied.versions("stats")[-1].content == before.content == content_hash(table)


def test_ttl_and_online_changes_are_minor(applied: FeatureStore) -> None:
    applied.apply([group(ttl=timedelta(days=1))])
    assert semver(applied) == "1.1.0"
    applied.apply([group(ttl=timedelta(days=1), online=True)])
    assert semver(applied) == "1.2.0"


# -- patch: metadata ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"description": "clicks and spend per user"},
        {"tags": {"team": "growth"}},
        {"owner": "ana@example.com"},
    ],
)
def test_metadata_only_change_is_patch(applied: FeatureStore, change: dict) -> None:
    versions = applied.versions("stats")
    plan = applied.apply([group(**change)])
    (item,) = plan.changes
    assert (item.before, item.after, item.level) == ("1.0.0", "1.0.1", "patch")
    assert semver(applied) == "1.0.1"
    assert applied.versions("stats") == versions  # no data version
    fg = applied.get_feature_group("stats")
    for key, value in change.items():
        assert getattr(fg, key) == value


def test_column_description_is_patch(applied: FeatureStore) -> None:
    applied.apply(
        [group(Field("clicks", "int32", description="per day"), Field("spend", "float32"))]
    )
    assert semver(applied) == "1.0.1"
    assert applied.get_feature_group("stats").feature_fields[0].description == "per day"


def test_versions_accumulate(applied: FeatureStore) -> None:
    applied.apply([group(description="a")])
    applied.apply([group(description="b")])
    applied.apply(
        [group(Field("clicks", "int32"), Field("spend", "float32"), Field("x"), description="b")]
    )
    applied.apply(
        [group(Field("clicks", "int32"), Field("spend", "float32"), Field("x"), description="c")]
    )
    history = [d.semver for d in applied.list_definitions("feature_group")]
    assert history == ["1.0.0", "1.0.1", "1.0.2", "1.1.0", "1.1.1"]


# -- major: breaking ------------------------------------------------------------------------------

ACCOUNT = Entity("account", join_keys=["account_id"])

BREAKING = {
    "removed": (group(Field("clicks", "int32")), "spend", "removed"),
    "renamed": (
        group(Field("clicks", "int32"), Field("spend_eur", "float32")),
        "spend",
        "removed (or renamed)",
    ),
    "narrowed": (
        group(Field("clicks", "int16"), Field("spend", "float32")),
        "clicks",
        "retyped from int32 to int16",
    ),
    "float_narrowed": (
        group(Field("clicks", "int32"), Field("spend", "int32")),
        "spend",
        "retyped from float32 to int32",
    ),
    "retyped": (
        group(Field("clicks", "string"), Field("spend", "float32")),
        "clicks",
        "retyped from int32 to string",
    ),
    "key_changed": (group(entity=ACCOUNT), "account_id", "primary key changed"),
    "event_time_changed": (group(event_time="ts"), "ts", "event_time changed"),
    "created_time_added": (group(created_time="created"), "created", "created_time changed"),
}


@pytest.mark.parametrize("case", list(BREAKING), ids=list(BREAKING))
def test_breaking_change_is_refused_and_nothing_changes(applied: FeatureStore, case: str) -> None:
    new, column, words = BREAKING[case]
    before = snapshot(applied)
    with pytest.raises(BreakingChangeError) as info:
        applied.apply([ACCOUNT, new] if case == "key_changed" else [new])
    err = info.value
    assert err.identity == "feature_group/stats@v1"
    assert err.next_major == 2
    text = str(err)
    assert column in text and words in text
    assert "version=2" in text
    after = snapshot(applied)
    assert after[:3] == before[:3]
    assert after[3].equals(before[3])
    assert applied.list_definitions("entity") == [
        applied.registry.latest_definition("entity", "user")
    ]


def test_plan_reports_without_changing_anything(applied: FeatureStore) -> None:
    before = snapshot(applied)
    additive = group(Field("clicks", "int32"), Field("spend", "float32"), Field("x"))
    plan = applied.plan([additive])
    (item,) = plan.changes
    assert (item.action, item.after) == ("update", "1.1.0")
    broken = group(Field("clicks", "int32"))
    plan = applied.plan([broken, Entity("merchant")])
    refused = plan.refused
    assert [i.identity for i in refused] == ["feature_group/stats@v1"]
    assert refused[0].after is None and refused[0].level == "major"
    assert any("'spend' removed" in r for r in refused[0].reasons)
    assert [i.identity for i in plan.changes] == ["entity/merchant"]
    after = snapshot(applied)
    assert after[:3] == before[:3] and after[3].equals(before[3])
    with pytest.raises(NotFoundError):
        applied.get_entity("merchant")


def test_apply_is_all_or_nothing(applied: FeatureStore) -> None:
    other = FeatureGroup("other", USER, features=["a"])
    applied.apply([other])
    before = snapshot(applied)
    other_versions = applied.versions("other")
    merchant = Entity("merchant")
    new_group = FeatureGroup("brand_new", merchant, features=["z"])
    with pytest.raises(BreakingChangeError, match="feature_group/stats@v1"):
        applied.apply(
            [
                merchant,
                new_group,
                FeatureGroup("other", USER, features=["a", "b"]),  # fine on its own
                group(Field("clicks", "int32")),  # breaking
            ]
        )
    after = snapshot(applied)
    assert after[:3] == before[:3] and after[3].equals(before[3])
    assert applied.versions("other") == other_versions
    assert applied.get_feature_group("other").feature_names == ("a",)
    with pytest.raises(NotFoundError):
        applied.get_feature_group("brand_new")
    assert not applied._svc.tables.table("brand_new", 1).exists()


def test_new_major_version_lives_beside_the_old_one(applied: FeatureStore) -> None:
    v1_rows = applied.read("stats")
    v1_versions = applied.versions("stats")
    v2 = group(Field("clicks", "int16"), Field("country", "string"), version=2)
    plan = applied.apply([v2])
    assert [(i.identity, i.action, i.after) for i in plan.changes] == [
        ("feature_group/stats@v2", "create", "2.0.0")
    ]
    # the latest major is what a bare name means now
    assert applied.get_feature_group("stats").version == 2
    assert [v.version for v in applied.versions("stats")] == [0]
    assert applied.read("stats").num_rows == 0
    # v1 stays readable and unchanged
    assert applied.get_feature_group("stats", 1).feature_names == ("clicks", "spend")
    assert applied.read("stats", major=1).equals(v1_rows)
    assert applied.versions("stats", major=1) == v1_versions
    assert semver(applied, major=1) == "1.0.0"
    # both majors take writes independently
    applied.ingest(
        "stats",
        batch()
        .drop_columns(["spend"])
        .set_column(2, "clicks", pa.array([1, 2, 3], pa.int16()))
        .append_column("country", pa.array(["a", "b", "c"])),
    )
    applied.ingest("stats", batch(5), version=1)
    assert applied.read("stats").num_rows == 3
    assert applied.read("stats", major=1).num_rows == 5
    assert applied.show("feature_group/stats@v1")["version"] == "1.0.0"
    assert applied.show("feature_group/stats@v2")["version"] == "2.0.0"
    # a later change to v1 is classified against v1, not v2
    applied.apply([group(description="still v1", version=1)])
    assert semver(applied, major=1) == "1.0.1"
    assert semver(applied, major=2) == "2.0.0"


def test_skipping_a_major_version_is_refused(applied: FeatureStore) -> None:
    with pytest.raises(DefinitionError, match="next major version is 2"):
        applied.apply([group(version=3)])


def test_duplicate_definitions_in_one_apply_are_refused(store: FeatureStore) -> None:
    with pytest.raises(DefinitionError, match="given twice"):
        store.apply([BASE, group(description="other")])
    with pytest.raises(DefinitionError, match="different definition of entity"):
        store.apply([Entity("user", join_keys=["user_id"], description="x"), BASE])
    with pytest.raises(DefinitionError, match="expected Entity, FeatureGroup or FeatureView"):
        store.apply(["stats"])  # type: ignore[list-item]
    assert store.list_definitions("feature_group") == []


def test_changing_an_entity_key_is_refused(applied: FeatureStore) -> None:
    changed = Entity("user", join_keys=[Field("user_id", "string")])
    with pytest.raises(BreakingChangeError) as info:
        applied.apply([changed])
    assert info.value.identity == "entity/user"
    text = str(info.value)
    assert "join keys changed" in text and "user_id" in text
    # an entity has no version= to set: the way out is a new entity and new group majors
    assert "set version=" not in text and "new entity under another name" in text
    assert applied.get_entity("user") == USER
    # which works
    account = Entity("user_s", join_keys=[Field("user_id", "string")])
    applied.apply([group(entity=account, version=2)])
    assert applied.get_feature_group("stats").primary_key == ("user_id",)
    assert applied.get_feature_group("stats").key_fields[0].dtype == pa.string()
    assert applied.read("stats", major=1).num_rows == 3


def test_entity_metadata_is_patch(applied: FeatureStore) -> None:
    applied.apply([Entity("user", join_keys=["user_id"], description="a person")])
    assert semver(applied, "entity", "user") == "1.0.1"


# -- views --------------------------------------------------------------------------------------


@pytest.fixture
def viewed(applied: FeatureStore) -> FeatureStore:
    applied.apply([FeatureView("fraud", [BASE[["clicks"]]])])
    return applied


def test_view_pins_the_group_major(viewed: FeatureStore) -> None:
    (source,) = viewed.get_feature_view("fraud").sources
    assert (source.group, source.major, source.features) == ("stats", 1, ("clicks",))
    assert semver(viewed, "feature_view", "fraud") == "1.0.0"


def test_adding_a_feature_to_a_view_is_minor(viewed: FeatureStore) -> None:
    plan = viewed.apply([FeatureView("fraud", [BASE[["clicks", "spend"]]])])
    (item,) = plan.changes
    assert (item.identity, item.after, item.level) == ("feature_view/fraud@v1", "1.1.0", "minor")
    assert viewed.get_feature_view("fraud").sources[0].features == ("clicks", "spend")


def test_removing_a_feature_from_a_view_is_breaking(viewed: FeatureStore) -> None:
    viewed.apply([FeatureView("fraud", [BASE[["clicks", "spend"]]])])
    with pytest.raises(BreakingChangeError) as info:
        viewed.apply([FeatureView("fraud", [BASE[["spend"]]])])
    assert info.value.identity == "feature_view/fraud@v1"
    assert "clicks" in str(info.value) and "version=2" in str(info.value)
    assert viewed.get_feature_view("fraud").sources[0].features == ("clicks", "spend")
    # as a new major version it is fine, and v1 stays
    viewed.apply([FeatureView("fraud", [BASE[["spend"]]], version=2)])
    assert viewed.get_feature_view("fraud").sources[0].features == ("spend",)
    assert viewed.get_feature_view("fraud", 1).sources[0].features == ("clicks", "spend")


def test_view_description_is_patch(viewed: FeatureStore) -> None:
    viewed.apply([FeatureView("fraud", [BASE[["clicks"]]], description="d")])
    assert semver(viewed, "feature_view", "fraud") == "1.0.1"


def test_view_of_unknown_group_or_feature_is_refused(store: FeatureStore) -> None:
    with pytest.raises(NotFoundError, match="not registered"):
        store.apply([FeatureView("v", [BASE])])
    store.apply([BASE])
    ghost = group(Field("clicks", "int32"), Field("spend", "float32"), Field("ghost"))
    with pytest.raises(DefinitionError, match="ghost"):
        store.apply([FeatureView("v", [ghost[["ghost"]]])])
    assert store.list_definitions("feature_view") == []


def test_view_applied_with_its_new_group(store: FeatureStore) -> None:
    store.apply([USER, BASE, FeatureView("fraud", [BASE])])
    assert store.get_feature_view("fraud").sources[0].features == ("clicks", "spend")
