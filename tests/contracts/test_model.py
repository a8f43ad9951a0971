"""The contract model: rules validate their parameters, names derive, contracts stay coherent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featureledger.definitions import FeatureGroup
from featureledger.definitions.contract import (
    AllowedValues,
    Cardinality,
    Check,
    Column,
    Contract,
    Distribution,
    Freshness,
    IngestionDelay,
    MaxNullFraction,
    NotNull,
    Range,
    Regex,
    RowCount,
    Unique,
    format_duration,
    parse_duration,
)
from featureledger.definitions.entity import Entity
from featureledger.errors import DefinitionError


@pytest.mark.parametrize(
    ("rule", "name"),
    [
        (NotNull("a"), "not_null(a)"),
        (MaxNullFraction("a", 0.1), "max_null_fraction(a)"),
        (Range("a", 0, 1), "range(a)"),
        (AllowedValues("a", ["x"]), "allowed_values(a)"),
        (Regex("a", "x+"), "regex(a)"),
        (Unique(["a", "b"]), "unique(a, b)"),
        (Unique("a"), "unique(a)"),
        (Unique(), "unique(key)"),
        (Cardinality("a", max=3), "cardinality(a)"),
        (RowCount(min=1), "row_count"),
        (Check("a  >=  0\n OR b"), "check(a >= 0 OR b)"),
        (Distribution("a", max_psi=0.2), "distribution(a)"),
        (Freshness("t", "1h"), "freshness(t)"),
        (IngestionDelay("t", "c", "1h"), "ingestion_delay(t, c)"),
        (Range("a", 0, name="  "), "range(a)"),
        (Range("a", 0, name="non_negative"), "non_negative"),
    ],
)
def test_rule_names_derive_from_the_rule_unless_given(rule, name):
    assert rule.name == name
    assert rule.severity == "error"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Range("a"), "give min, max or both"),
        (lambda: Range("a", 5, 1), "greater than max"),
        (lambda: Range("a", float("nan")), "NaN"),
        (lambda: Range("a", True), "allowed_values for booleans"),
        (lambda: Range("a", datetime(2024, 1, 1)), "no time zone"),
        (lambda: Range("a", 1, "z"), "not comparable"),
        (lambda: Range("a", 0, severity="fatal"), "severity must be 'error' or 'warn'"),
        (lambda: Range("bad name", 0), "not allowed"),
        (lambda: MaxNullFraction("a", 1.5), "from 0 to 1"),
        (lambda: AllowedValues("a", []), "non-empty"),
        (lambda: AllowedValues("a", [None]), "cannot hold null"),
        (lambda: AllowedValues("a", [[1]]), "number, string, date"),
        (lambda: Regex("a", "(unclosed"), "not a valid regex"),
        (lambda: Unique(["a", "a"]), "repeat"),
        (lambda: Cardinality("a", min=-1), "non-negative integer"),
        (lambda: RowCount(), "give min, max or both"),
        (lambda: RowCount(min=3, max=2), "greater than max"),
        (lambda: Check("   "), "non-empty"),
        (lambda: Check("a > 0; DROP TABLE x"), "without ';'"),
        (lambda: Distribution("a"), "give max_psi, max_ks or both"),
        (lambda: Distribution("a", max_ks=2), "at most 1"),
        (lambda: Distribution("a", max_psi=0.1, bins=1), "bins"),
        (lambda: Freshness("t", "-1h"), "positive"),
        (lambda: Freshness("t", timedelta(0)), "positive"),
        (lambda: IngestionDelay("t", "c", "soon"), "cannot read duration"),
    ],
)
def test_rules_refuse_bad_parameters_with_a_message(build, message):
    with pytest.raises(DefinitionError, match=message):
        build()


def test_rule_parameters_are_normalized():
    assert AllowedValues("a", ["x", "y"]).values == ("x", "y")
    assert Unique(["a", "b"]).columns == ("a", "b")
    assert Freshness("t", "1d2h").max_age == timedelta(days=1, hours=2)
    assert Freshness("t", 90).max_age == timedelta(seconds=90)
    assert Range("a", date(2024, 1, 1), date(2024, 2, 1)).min == date(2024, 1, 1)


@given(st.timedeltas(min_value=timedelta(days=-999), max_value=timedelta(days=99999)))
def test_durations_format_and_parse_back_exactly(td):
    assert parse_duration(format_duration(td)) == td


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", timedelta(hours=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5h", timedelta(minutes=90)),
        ("1h 30m", timedelta(minutes=90)),
        ("15us", timedelta(microseconds=15)),
    ],
)
def test_duration_spellings(text, expected):
    assert parse_duration(text) == expected


def test_columns_imply_type_and_not_null_rules():
    c = Contract("ds", columns=[Column("a", "int64", nullable=False), "b"])
    assert [r.name for r in c.all_rules] == ["type(a)", "not_null(a)", "type(b)"]
    assert c.column("b").dtype is None
    assert c.column("a").type_name == "int64"


def test_rules_keep_a_canonical_order_column_rules_first():
    c = Contract(
        "ds",
        columns=["a", "b"],
        rules=[RowCount(min=1), Range("b", 0), Unique(["a", "b"]), NotNull("a"), Range("a", 1)],
    )
    assert [r.name for r in c.rules] == [
        "not_null(a)",
        "range(a)",
        "range(b)",
        "row_count",
        "unique(a, b)",
    ]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Contract("ds", columns=["a", "a"]), "declared twice"),
        (lambda: Contract("ds", columns=["a"], rules=[Range("b", 0)]), "undeclared column"),
        (lambda: Contract("ds", columns=["a"], key=["b"]), "not declared columns"),
        (lambda: Contract("ds", key=["a", "a"]), "repeats"),
        (lambda: Contract("ds", rules=[Unique()]), "has no key"),
        (lambda: Contract("ds", rules=[Range("a", 0), Range("a", 1)]), "two rules are named"),
        (
            lambda: Contract("ds", columns=[Column("a", nullable=False)], rules=[NotNull("a")]),
            "already says",
        ),
        (lambda: Contract("ds", rules=[Freshness("t", "1h")]), "go in slos"),
        (lambda: Contract("ds", slos=[Range("a", 0)]), "slos must be"),
        (lambda: Contract("bad-name"), "not allowed"),
        (lambda: Column("a", classification="secret"), "classification"),
        (lambda: Column("a", "decimal"), "unknown type"),
    ],
)
def test_contracts_refuse_incoherent_declarations(build, message):
    with pytest.raises(DefinitionError, match=message):
        build()


def test_warn_not_null_on_a_nullable_column_is_fine_and_rules_are_found_by_name():
    c = Contract("ds", columns=["a"], rules=[NotNull("a", severity="warn")])
    assert c.rule("not_null(a)").severity == "warn"
    with pytest.raises(DefinitionError, match="no rule named"):
        c.rule("nope")


def test_contract_from_a_feature_group_takes_columns_key_and_metadata():
    user = Entity("user", join_keys=["user_id"])
    fg = FeatureGroup(
        "user_stats",
        user,
        features=["f0", "f1"],
        created_time="created",
        owner="risk",
        description="stats",
    )
    c = Contract.from_feature_group(
        fg, rules=[Range("f0", 0)], slos=[Freshness("event_timestamp", "1d")]
    )
    assert c.column_names == ("user_id", "event_timestamp", "created", "f0", "f1")
    assert c.key == ("user_id", "event_timestamp")
    assert not c.column("user_id").nullable and not c.column("event_timestamp").nullable
    assert c.column("f0").nullable and c.column("created").nullable
    assert (c.owner, c.description, c.dataset) == ("risk", "stats", "user_stats")
    assert c.column("event_timestamp").dtype == fg.arrow_schema.field("event_timestamp").type


def test_contract_bounds_accept_aware_datetimes():
    r = Range("t", datetime(2024, 1, 1, tzinfo=UTC))
    assert r.min.tzinfo is UTC
