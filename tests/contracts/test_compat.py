"""The breaking / non-breaking classification of contract changes, as a table."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from featureledger.contracts import (
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
    classify_contract_change,
)

BASE_COLUMNS = (
    Column("id", "int64", nullable=False),
    Column("t", "timestamp", nullable=False),
    Column("amount", "float32"),
    Column("n", "int32"),
    Column("country", "string", description="ISO code"),
    Column("created", "timestamp"),
)


def contract(*rules, columns=BASE_COLUMNS, slos=(), key=("id", "t"), **kw) -> Contract:
    return Contract("tx", columns=columns, rules=rules, slos=slos, key=key, **kw)


def cols(**changes) -> tuple[Column, ...]:
    """BASE_COLUMNS with some replaced (a Column), removed (None) or added (new names)."""
    out = [changes.pop(c.name, c) for c in BASE_COLUMNS]
    return tuple(c for c in [*out, *changes.values()] if c is not None)


R = Range("amount", 0, 100)
A = AllowedValues("country", ["DE", "FR"])

# (case id, old contract, new contract, expected level, a fragment of the reason)
CASES = [
    ("unchanged", contract(R), contract(R), "none", ""),
    # columns
    ("column removed", contract(), contract(columns=cols(n=None)), "major", "'n' removed"),
    (
        "nullable column added",
        contract(),
        contract(columns=cols(x=Column("x", "int64"))),
        "minor",
        "nullable column 'x' added",
    ),
    (
        "required column added",
        contract(),
        contract(columns=cols(x=Column("x", "int64", nullable=False))),
        "major",
        "required column 'x' added",
    ),
    (
        "type widened",
        contract(),
        contract(columns=cols(n=Column("n", "int64"))),
        "minor",
        "widened from int32 to int64",
    ),
    (
        "float widened",
        contract(),
        contract(columns=cols(amount=Column("amount", "float64"))),
        "minor",
        "widened",
    ),
    (
        "type narrowed",
        contract(),
        contract(columns=cols(n=Column("n", "int8"))),
        "major",
        "narrowed or retyped from int32 to int8",
    ),
    (
        "type changed",
        contract(),
        contract(columns=cols(n=Column("n", "string"))),
        "major",
        "retyped",
    ),
    (
        "type constraint dropped",
        contract(),
        contract(columns=cols(n=Column("n"))),
        "minor",
        "no longer constrains",
    ),
    (
        "type constraint added",
        contract(columns=cols(n=Column("n"))),
        contract(),
        "major",
        "now must be int32",
    ),
    (
        "became required",
        contract(),
        contract(columns=cols(n=Column("n", "int32", nullable=False))),
        "major",
        "became required",
    ),
    (
        "became nullable",
        contract(),
        contract(columns=cols(t=Column("t", "timestamp"))),
        "minor",
        "became nullable",
    ),
    (
        "classification",
        contract(),
        contract(
            columns=cols(
                country=Column("country", "string", description="ISO code", classification="pii")
            )
        ),
        "minor",
        "classification changed from internal to pii",
    ),
    (
        "column description",
        contract(),
        contract(columns=cols(country=Column("country", "string"))),
        "patch",
        "description changed",
    ),
    (
        "column tags",
        contract(),
        contract(
            columns=cols(
                country=Column("country", "string", description="ISO code", tags={"a": "b"})
            )
        ),
        "patch",
        "tags changed",
    ),
    ("key changed", contract(), contract(key=("id",)), "major", "key changed"),
    (
        "owner, description, tags",
        contract(),
        contract(owner="x", description="y", tags={"k": "v"}),
        "patch",
        "owner changed",
    ),
    # range
    (
        "min raised",
        contract(R),
        contract(Range("amount", 1, 100)),
        "major",
        "min raised from 0 to 1 (tightened)",
    ),
    (
        "min lowered",
        contract(R),
        contract(Range("amount", -1, 100)),
        "minor",
        "min lowered from 0 to -1 (loosened)",
    ),
    (
        "max lowered",
        contract(R),
        contract(Range("amount", 0, 99.5)),
        "major",
        "max lowered from 100 to 99.5 (tightened)",
    ),
    ("max raised", contract(R), contract(Range("amount", 0, 1000)), "minor", "max raised"),
    ("max dropped", contract(R), contract(Range("amount", 0)), "minor", "max 100 dropped"),
    ("min added", contract(Range("amount", max=100)), contract(R), "major", "min 0 added"),
    (
        "same bound other number type",
        contract(R),
        contract(Range("amount", 0.0, 100.0)),
        "none",
        "",
    ),
    (
        "bound of another type",
        contract(Range("country", "a")),
        contract(Range("country", date(2024, 1, 1))),
        "major",
        "min changed",
    ),
    (
        "warn rule tightened",
        contract(Range("amount", 0, 100, severity="warn")),
        contract(Range("amount", 5, 100, severity="warn")),
        "minor",
        "(tightened)",
    ),
    # severities and rule sets
    (
        "warn to error",
        contract(Range("amount", 0, 100, severity="warn")),
        contract(R),
        "major",
        "severity raised from warn to error",
    ),
    (
        "error to warn",
        contract(R),
        contract(Range("amount", 0, 100, severity="warn")),
        "minor",
        "severity lowered",
    ),
    ("new error rule", contract(), contract(R), "major", "new error rule 'range(amount)'"),
    (
        "new warn rule",
        contract(),
        contract(Range("amount", 0, 100, severity="warn")),
        "minor",
        "new warn rule",
    ),
    ("rule removed", contract(R), contract(), "minor", "rule 'range(amount)' removed"),
    (
        "kind changed under one name",
        contract(Range("amount", 0, name="r")),
        contract(NotNull("amount", name="r")),
        "major",
        "changed from range to not_null",
    ),
    # null fraction, allowed values, regex, uniqueness
    (
        "max_null_fraction lowered",
        contract(MaxNullFraction("amount", 0.1)),
        contract(MaxNullFraction("amount", 0.05)),
        "major",
        "max_fraction lowered",
    ),
    (
        "max_null_fraction raised",
        contract(MaxNullFraction("amount", 0.1)),
        contract(MaxNullFraction("amount", 0.2)),
        "minor",
        "max_fraction raised",
    ),
    (
        "allowed value removed",
        contract(A),
        contract(AllowedValues("country", ["DE"])),
        "major",
        "allowed value(s) ['FR'] removed (tightened)",
    ),
    (
        "allowed value added",
        contract(A),
        contract(AllowedValues("country", ["DE", "FR", "IT"])),
        "minor",
        "allowed value(s) ['IT'] added (loosened)",
    ),
    (
        "allowed values reordered",
        contract(A),
        contract(AllowedValues("country", ["FR", "DE"])),
        "none",
        "",
    ),
    (
        "regex changed",
        contract(Regex("country", "[A-Z]{2}")),
        contract(Regex("country", "[A-Z]{2,3}")),
        "major",
        "pattern changed",
    ),
    (
        "unique on fewer columns",
        contract(Unique(["id", "t"], name="u")),
        contract(Unique(["id"], name="u")),
        "major",
        "unique on fewer columns",
    ),
    (
        "unique on more columns",
        contract(Unique(["id"], name="u")),
        contract(Unique(["id", "t"], name="u")),
        "minor",
        "unique on more columns",
    ),
    (
        "unique key spelled out",
        contract(Unique(name="u")),
        contract(Unique(["t", "id"], name="u")),
        "none",
        "",
    ),
    # counts
    (
        "cardinality max lowered",
        contract(Cardinality("country", 1, 200)),
        contract(Cardinality("country", 1, 100)),
        "major",
        "max lowered",
    ),
    (
        "row count min raised",
        contract(RowCount(min=1)),
        contract(RowCount(min=10)),
        "major",
        "min raised from 1 to 10",
    ),
    (
        "row count max dropped",
        contract(RowCount(1, 10)),
        contract(RowCount(min=1)),
        "minor",
        "max 10 dropped",
    ),
    # SQL and distributions
    (
        "check rewritten",
        contract(Check("amount >= 0", name="c")),
        contract(Check("amount > 0", name="c")),
        "major",
        "expression changed",
    ),
    (
        "check reformatted",
        contract(Check("amount >= 0", name="c")),
        contract(Check(" amount  >=   0 ", name="c")),
        "none",
        "",
    ),
    (
        "psi threshold lowered",
        contract(Distribution("amount", max_psi=0.2)),
        contract(Distribution("amount", max_psi=0.1)),
        "major",
        "max_psi lowered",
    ),
    (
        "ks threshold added",
        contract(Distribution("amount", max_psi=0.2)),
        contract(Distribution("amount", max_psi=0.2, max_ks=0.3)),
        "major",
        "max_ks 0.3 added",
    ),
    (
        "psi threshold raised",
        contract(Distribution("amount", max_psi=0.2)),
        contract(Distribution("amount", max_psi=0.3)),
        "minor",
        "max_psi raised",
    ),
    (
        "bins changed",
        contract(Distribution("amount", max_psi=0.2)),
        contract(Distribution("amount", max_psi=0.2, bins=20)),
        "major",
        "bins changed",
    ),
    # SLOs
    (
        "freshness tightened",
        contract(slos=[Freshness("t", "2h")]),
        contract(slos=[Freshness("t", "1h")]),
        "major",
        "max_age lowered from 2h to 1h",
    ),
    (
        "freshness loosened",
        contract(slos=[Freshness("t", "2h")]),
        contract(slos=[Freshness("t", "1d")]),
        "minor",
        "max_age raised",
    ),
    (
        "delay tightened",
        contract(slos=[IngestionDelay("t", "created", "1d")]),
        contract(slos=[IngestionDelay("t", "created", "1h")]),
        "major",
        "max_delay lowered",
    ),
    (
        "new warn SLO",
        contract(),
        contract(slos=[Freshness("t", "1h", severity="warn")]),
        "minor",
        "new warn rule 'freshness(t)'",
    ),
    (
        "rule column changed",
        contract(NotNull("amount", name="nn")),
        contract(NotNull("n", name="nn")),
        "major",
        "columns changed",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "level", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_contract_change_classification(old, new, level, reason):
    change = classify_contract_change(old, new)
    assert change.level == level, change.reasons
    assert change.breaking == (level == "major")
    if reason:
        assert any(reason in r for r in change.reasons), change.reasons


def test_breaking_reasons_say_what_broke():
    change = classify_contract_change(
        contract(R, A),
        contract(Range("amount", 5, 100), AllowedValues("country", ["DE"]), columns=cols(n=None)),
    )
    assert change.breaking_reasons() == [
        "column 'n' removed (or renamed)",
        "rule 'range(amount)': min raised from 0 to 5 (tightened)",
        "rule 'allowed_values(country)': allowed value(s) ['FR'] removed (tightened)",
    ]


def test_widened_and_added_columns_are_reported_for_storage():
    change = classify_contract_change(
        contract(), contract(columns=cols(n=Column("n", "int64"), x=Column("x", "bool")))
    )
    assert change.widened == {"n": "int64"}
    assert change.added == ["x"]


def test_renaming_the_dataset_is_breaking():
    old = contract()
    assert classify_contract_change(old, replace(old, dataset="tx2")).breaking
