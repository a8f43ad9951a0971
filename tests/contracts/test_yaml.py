"""Contract YAML: featureledger's form and ODCS v3 both read back to an equal contract."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

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
    contract_from_yaml,
    contract_to_yaml,
    evaluate,
    from_odcs,
    import_odcs,
    load_contract,
    to_odcs,
)
from featureledger.errors import DefinitionError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"

# -- random contracts -----------------------------------------------------------------------------
names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
text = st.text(
    st.characters(categories=("L", "N", "P", "Zs"), exclude_characters="\x85"), max_size=12
)
tags = st.dictionaries(names, text, max_size=2)
dtypes = st.sampled_from(
    [
        None,
        "int64",
        "int32",
        "float64",
        "float32",
        "string",
        "bool",
        "date",
        "timestamp",
        "list<float32>",
    ]
)
severity = st.sampled_from(["error", "warn"])
rule_name = st.one_of(st.just(""), text.filter(lambda s: s.strip() != ""))
ints = st.integers(-(10**15), 10**15)
scalars = st.one_of(
    ints.map(lambda v: ("int", v)),
    st.floats(allow_nan=False, width=64).map(lambda v: ("float", v)),
    text.map(lambda v: ("str", v)),
    st.dates().map(lambda v: ("date", v)),
    st.datetimes(timezones=st.just(UTC)).map(lambda v: ("datetime", v)),
)
durations = st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=9999))


@st.composite
def bounds(draw, kind=None):
    first = draw(scalars)
    if kind is None:
        kind = first[0]
    same = draw(scalars.filter(lambda s: s[0] == kind)) if first[0] == kind else first
    low, high = sorted([first[1], same[1]]) if first[0] == kind else (first[1], first[1])
    which = draw(st.sampled_from(["both", "min", "max"]))
    return (low if which != "max" else None), (high if which != "min" else None)


@st.composite
def rules_for(draw, cols: list[str]):
    col = st.sampled_from(cols)
    common = {"severity": draw(severity), "name": draw(rule_name)}
    kind = draw(
        st.sampled_from(
            [
                "not_null",
                "null_fraction",
                "range",
                "allowed",
                "regex",
                "unique",
                "cardinality",
                "row_count",
                "check",
                "dist",
            ]
        )
    )
    if kind == "not_null":
        return NotNull(draw(col), **common)
    if kind == "null_fraction":
        return MaxNullFraction(draw(col), draw(st.floats(0, 1)), **common)
    if kind == "range":
        low, high = draw(bounds())
        return Range(draw(col), low, high, **common)
    if kind == "allowed":
        values = draw(
            st.lists(st.one_of(scalars.map(lambda s: s[1]), st.booleans()), min_size=1, max_size=4)
        )
        return AllowedValues(draw(col), values, **common)
    if kind == "regex":
        return Regex(
            draw(col), draw(st.sampled_from(["[a-z]+", r"\d{3}-\d{2}", ".*@.*", "x"])), **common
        )
    if kind == "unique":
        return Unique(draw(st.lists(col, min_size=1, max_size=3, unique=True)), **common)
    if kind == "cardinality":
        low, high = sorted(draw(st.lists(st.integers(0, 10**6), min_size=2, max_size=2)))
        return Cardinality(draw(col), low, draw(st.sampled_from([high, None])), **common)
    if kind == "row_count":
        return RowCount(draw(st.sampled_from([None, 1])), draw(st.integers(1, 10**9)), **common)
    if kind == "check":
        expr = draw(st.sampled_from(["a >= 0 OR refunded", "x < y", "length(s) = 3"]))
        return Check(expr, **common)
    return Distribution(
        draw(col),
        max_psi=draw(st.none() | st.floats(0, 10)),
        max_ks=draw(st.floats(0, 1)),
        bins=draw(st.integers(2, 50)),
        **common,
    )


@st.composite
def contracts(draw):
    cols = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    columns = [
        Column(
            c,
            draw(dtypes),
            nullable=draw(st.booleans()),
            description=draw(text),
            classification=draw(st.sampled_from(["public", "internal", "pii", "sensitive"])),
            tags=draw(tags),
        )
        for c in cols
    ]
    key = draw(st.lists(st.sampled_from(cols), max_size=2, unique=True))
    rules = draw(st.lists(rules_for(cols), max_size=6))
    if draw(st.booleans()) and key:
        rules.append(Unique())
    slos = []
    if draw(st.booleans()):
        slos.append(
            Freshness(draw(st.sampled_from(cols)), draw(durations), severity=draw(severity))
        )
    if draw(st.booleans()):
        slos.append(
            IngestionDelay(
                draw(st.sampled_from(cols)),
                draw(st.sampled_from(cols)),
                draw(durations),
                name=draw(rule_name),
            )
        )
    try:
        return Contract(
            draw(names),
            columns=columns,
            rules=rules,
            slos=slos,
            key=key,
            owner=draw(text),
            description=draw(text),
            tags=draw(tags),
        )
    except DefinitionError:
        reject()  # e.g. two rules that derive the same name


ROUND_TRIP = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.slow
@ROUND_TRIP
@given(contracts())
def test_featureledger_yaml_round_trips(contract):
    text = contract_to_yaml(contract)
    assert contract_from_yaml(text) == contract
    assert load_contract(text) == contract


@pytest.mark.slow
@ROUND_TRIP
@given(contracts())
def test_odcs_round_trips(contract):
    text = to_odcs(contract)
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "v3.1.0" and doc["kind"] == "DataContract"
    assert from_odcs(text) == contract
    assert load_contract(text) == contract


# -- the documented form --------------------------------------------------------------------------
def doc_examples() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)


def test_the_documented_examples_parse():
    blocks = doc_examples()
    assert len(blocks) >= 2
    contracts_read = [load_contract(b) for b in blocks if "kind: DataContract" in b]
    assert contracts_read
    main = contracts_read[0]
    assert main.dataset == "transactions"
    assert {r.kind for r in main.all_rules} >= {
        "type",
        "not_null",
        "range",
        "allowed_values",
        "regex",
        "unique",
        "row_count",
        "check",
        "max_null_fraction",
        "cardinality",
        "distribution",
        "freshness",
        "ingestion_delay",
    }


def test_a_documented_contract_evaluates():
    contract = load_contract(doc_examples()[0])
    report = evaluate(contract, pa.table({"user_id": [1]}))
    assert not report.ok  # most declared columns are missing from this one-column batch
    assert report["type(user_id)"].status == "passed"


def test_load_contract_reads_a_path(tmp_path):
    contract = Contract("ds", columns=["a"], rules=[Range("a", 0)])
    path = tmp_path / "ds.contract.yaml"
    path.write_text(contract_to_yaml(contract))
    assert load_contract(path) == contract
    assert load_contract(str(path)) == contract


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("apiVersion: featureledger/v2\ndataset: a\n", "apiVersion"),
        ("apiVersion: featureledger/v1\ndataset: a\nowners: x\n", "unknown key"),
        (
            "apiVersion: featureledger/v1\ndataset: a\nschema:\n- name: a\n  properties:\n"
            "  - name: c\n    quality:\n    - rule: ranges\n      min: 0\n",
            "unknown quality rule",
        ),
        (
            "apiVersion: featureledger/v1\ndataset: a\nschema:\n- name: a\n  properties:\n"
            "  - name: c\n    quality:\n    - rule: range\n      minimum: 0\n",
            "no setting",
        ),
        ("apiVersion: featureledger/v1\ndataset: a\nschema:\n- name: b\n", "must match"),
        (
            "apiVersion: featureledger/v1\ndataset: a\nslaProperties:\n- rule: range\n",
            "unknown slaProperties rule",
        ),
        (
            "apiVersion: featureledger/v1\ndataset: a\nschema:\n- name: a\n  quality:\n"
            "  - min: 1\n",
            "needs a 'rule:'",
        ),
        ("a: [unclosed", "does not parse"),
    ],
)
def test_bad_featureledger_yaml_is_refused_with_a_reason(text, message):
    with pytest.raises(DefinitionError, match=message):
        contract_from_yaml(text)


# -- importing hand-written ODCS ------------------------------------------------------------------
ODCS = """
apiVersion: v3.0.2
kind: DataContract
id: 53581432-6c55-4ba2-a65f-72344a91553a
version: 1.1.0
status: active
description:
  purpose: Orders placed on the web shop.
team:
  - username: ceastwood
    role: Data Scientist
  - username: daustin
    role: Owner
schema:
  - name: orders
    physicalType: table
    properties:
      - name: order_id
        logicalType: string
        physicalType: varchar(18)
        required: true
        primaryKey: true
        primaryKeyPosition: 1
        unique: true
        classification: restricted
      - name: amount
        logicalType: number
        physicalType: double
        logicalTypeOptions: {minimum: 0, maximum: 10000}
        quality:
          - metric: nullValues
            mustBeLessOrEqualTo: 5
            unit: percent
            severity: warning
      - name: status
        logicalType: string
        tags: [lifecycle, "owner:shop"]
        quality:
          - rule: validValues
            validValues: [placed, shipped]
          - type: text
            description: Status comes from the shop's order service.
      - name: email
        logicalType: string
        classification: pii
        quality:
          - metric: invalidValues
            arguments: {pattern: '[^@]+@[^@]+'}
            mustBe: 0
      - name: placed_at
        logicalType: timestamp
        required: true
        primaryKey: true
        primaryKeyPosition: 2
      - name: loaded_at
        logicalType: timestamp
    quality:
      - metric: rowCount
        mustBeGreaterThan: 0
      - type: sql
        query: SELECT COUNT(*) FROM ${object} WHERE amount < 0 AND status = 'shipped'
        mustBe: 0
        name: no_negative_shipped
slaProperties:
  - property: freshness
    value: 2
    unit: h
    element: orders.placed_at
  - property: latency
    value: 1
    unit: d
    element: orders.placed_at,orders.loaded_at
  - property: retention
    value: 3
    unit: y
"""


def test_hand_written_odcs_imports_what_featureledger_can_enforce():
    c = from_odcs(ODCS)
    assert (c.dataset, c.owner, c.description) == (
        "orders",
        "daustin",
        "Orders placed on the web shop.",
    )
    assert c.key == ("order_id", "placed_at")
    assert c.column("order_id").dtype == pa.string() and not c.column("order_id").nullable
    assert c.column("order_id").classification == "sensitive"
    assert c.column("amount").dtype == pa.float64()
    assert c.column("status").tags == {"lifecycle": "", "owner": "shop"}
    assert c.column("email").classification == "pii"
    assert c.column("placed_at").dtype == pa.timestamp("us", tz="UTC")
    by_name = {r.name: r for r in c.all_rules}
    assert by_name["unique(order_id)"] == Unique(["order_id"])
    assert by_name["range(amount)"] == Range("amount", 0, 10000)
    assert by_name["max_null_fraction(amount)"] == MaxNullFraction("amount", 0.05, severity="warn")
    assert by_name["allowed_values(status)"] == AllowedValues("status", ["placed", "shipped"])
    assert by_name["regex(email)"] == Regex("email", "[^@]+@[^@]+")
    assert by_name["row_count"] == RowCount(min=1)
    assert by_name["no_negative_shipped"] == Check(
        "NOT (amount < 0 AND status = 'shipped')", name="no_negative_shipped"
    )
    assert by_name["freshness(placed_at)"] == Freshness("placed_at", "2h")
    assert by_name["ingestion_delay(placed_at, loaded_at)"] == IngestionDelay(
        "placed_at", "loaded_at", "1d"
    )


def test_odcs_items_featureledger_cannot_enforce_are_listed_or_dropped():
    doc = yaml.safe_load(ODCS)
    doc["schema"][0]["quality"].append(
        {"type": "custom", "engine": "soda", "implementation": "type: duplicate_percent"}
    )
    doc["slaProperties"].append({"property": "throughput", "value": 10})
    with pytest.raises(DefinitionError) as info:
        from_odcs(doc)
    assert "soda" in str(info.value) and "throughput" in str(info.value)
    assert "lenient=True" in str(info.value) and "--lenient" in str(info.value)
    lenient = from_odcs(doc, lenient=True)
    assert lenient == from_odcs(ODCS)
    # the lenient import names each item it dropped, with the reason
    dropped = import_odcs(doc, lenient=True).dropped
    assert len(dropped) == 2
    assert "engine 'soda'" in dropped[0] and "featureledger runs only its own rules" in dropped[0]
    assert "throughput" in dropped[1] and "freshness and latency" in dropped[1]


def test_odcs_export_uses_standard_terms_for_other_tools():
    contract = Contract(
        "tx",
        columns=[Column("id", "int64", nullable=False), Column("amount", "float64")],
        rules=[
            Range("amount", 0, 100),
            NotNull("amount", severity="warn"),
            Unique(["id"]),
            RowCount(1, 10),
            Check("amount > 0", name="positive"),
            Distribution("amount", max_psi=0.2),
        ],
        slos=[Freshness("id", "1d")],
        key=["id"],
        owner="risk",
    )
    doc = yaml.safe_load(to_odcs(contract))
    props = {p["name"]: p for p in doc["schema"][0]["properties"]}
    assert props["id"]["primaryKey"] is True and props["id"]["required"] is True
    amount_q = {q["name"]: q for q in props["amount"]["quality"]}
    assert amount_q["not_null(amount)"]["metric"] == "nullValues"
    assert amount_q["not_null(amount)"]["severity"] == "warning"
    assert amount_q["range(amount)"]["query"] == (
        "SELECT COUNT(*) FROM {object} WHERE {property} < 0 OR {property} > 100"
    )
    assert amount_q["distribution(amount)"]["engine"] == "featureledger"
    table_q = {q["name"]: q for q in doc["schema"][0]["quality"]}
    assert table_q["row_count"]["mustBeBetween"] == [1, 10]
    assert table_q["positive"]["query"] == "SELECT COUNT(*) FROM {object} WHERE NOT (amount > 0)"
    assert doc["team"] == {"name": "risk"}
    assert doc["slaProperties"][0]["property"] == "freshness"
    assert (doc["slaProperties"][0]["value"], doc["slaProperties"][0]["unit"]) == (1, "d")
    # without featureledger's exact forms, the standard terms alone still read back
    for item in [*props["amount"]["quality"], *doc["schema"][0]["quality"]]:
        item.pop("customProperties")
    doc.pop("customProperties")  # the SLA items' exact forms
    plain = from_odcs(doc)
    # a SQL count reads back as the row predicate it states
    assert plain.rule("range(amount)") == Check(
        "NOT (amount < 0 OR amount > 100)", name="range(amount)"
    )
    assert plain.rule("not_null(amount)").severity == "warn"
    assert plain.rule("row_count") == RowCount(1, 10)
    assert plain.rule("positive") == Check("amount > 0", name="positive")
    assert plain.rule("distribution(amount)") == Distribution("amount", max_psi=0.2)
    assert plain.rule("freshness(id)") == Freshness("id", "1d")
