"""Evaluating batches: every rule on valid, invalid, null and empty data; the report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from featureledger.contracts import (
    FAILED_RULES_COLUMN,
    AllowedValues,
    Cardinality,
    Check,
    Column,
    Contract,
    ContractViolation,
    Distribution,
    Freshness,
    IngestionDelay,
    MaxNullFraction,
    NotNull,
    Range,
    Regex,
    RowCount,
    Rule,
    Unique,
    ValidationReport,
    evaluate,
)
from featureledger.errors import DataError, TimestampError

NOW = datetime(2024, 6, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def run(rule: Rule, table: pa.Table | None = None, *, key=(), reference=None, now=NOW, **columns):
    table = pa.table(columns) if table is None else table
    contract = Contract(
        "ds", rules=[] if rule.slo else [rule], slos=[rule] if rule.slo else [], key=key
    )
    report = evaluate(contract, table, now=now, reference=reference)
    return report, report[rule.name]


def empty(dtype: pa.DataType | None = None, name: str = "a") -> pa.Table:
    return pa.table({name: pa.array([], dtype or pa.int64())})


def rows_of(result) -> list[int]:
    return [e["row"] for e in result.examples]


# -- not null / null fraction ---------------------------------------------------------------------
def test_not_null_counts_null_rows_and_nan_is_a_value():
    report, r = run(NotNull("a"), a=[1.0, None, float("nan"), None])
    assert (r.status, r.passed, r.failed) == ("failed", 2, 2)
    assert rows_of(r) == [1, 3]
    assert r.observed == {"nulls": 2, "null_fraction": 0.5}
    assert report.invalid_rows.tolist() == [1, 3]
    _, ok = run(NotNull("a"), a=[1, 2])
    assert (ok.status, ok.failed) == ("passed", 0)


def test_not_null_on_an_empty_batch_passes():
    _, r = run(NotNull("a"), empty())
    assert (r.status, r.passed, r.failed) == ("passed", 0, 0)


def test_max_null_fraction_is_inclusive_and_batch_level():
    report, r = run(MaxNullFraction("a", 0.5), a=[1, None])
    assert r.status == "passed" and r.observed["null_fraction"] == 0.5
    report, r = run(MaxNullFraction("a", 0.5), a=[1, None, None])
    assert r.status == "failed" and r.failed == 2 and r.level == "batch"
    assert len(report.invalid_rows) == 0 and not report.splittable
    _, r = run(MaxNullFraction("a", 0.0), empty())
    assert r.status == "passed" and r.observed["null_fraction"] is None


# -- range ----------------------------------------------------------------------------------------
def test_range_bounds_are_inclusive_and_nulls_pass():
    _, r = run(Range("a", 0, 10), a=[0, 10, None, 5])
    assert (r.status, r.failed, r.passed) == ("passed", 0, 4)
    assert r.observed == {"min": 0, "max": 10}


def test_range_counts_rows_outside_and_reports_min_max():
    report, r = run(Range("a", 0, 10), a=[-1, 11, 5, None, 20])
    assert (r.status, r.failed, r.passed) == ("failed", 3, 2)
    assert rows_of(r) == [0, 1, 4]
    assert r.observed == {"min": -1, "max": 20}
    assert report.invalid_rows.tolist() == [0, 1, 4]
    assert "3 of 5 row(s) outside [0, 10]" in r.message


def test_range_with_one_open_bound():
    _, r = run(Range("a", min=0), a=[0, 10**12, -1])
    assert r.failed == 1
    _, r = run(Range("a", max=0.5), a=[0.5, -1e300, 0.6])
    assert r.failed == 1


def test_range_rejects_nan_even_with_only_a_lower_bound_but_accepts_infinities_in_open_range():
    _, r = run(Range("a", min=0.0), a=[float("nan"), float("inf"), 1.0])
    assert r.failed == 1 and rows_of(r) == [0]
    _, r = run(Range("a", 0.0, 1.0), a=[float("nan"), float("inf")])
    assert r.failed == 2


def test_range_on_timestamps_dates_and_strings():
    ts = pa.array([datetime(2023, 12, 31, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)], TS)
    _, r = run(Range("t", datetime(2024, 1, 1, tzinfo=UTC)), t=ts)
    assert r.failed == 1 and rows_of(r) == [0]
    assert r.observed["min"] == datetime(2023, 12, 31, tzinfo=UTC)
    _, r = run(Range("d", max=date(2024, 1, 1)), d=[date(2024, 1, 1), date(2024, 1, 2)])
    assert r.failed == 1 and rows_of(r) == [1]
    _, r = run(Range("s", "b", "d"), s=["a", "b", "c", "d", "e"])
    assert r.failed == 2


def test_range_on_an_empty_batch_passes_with_no_observations():
    _, r = run(Range("a", 0, 1), empty(pa.float64()))
    assert r.status == "passed" and r.observed == {"min": None, "max": None}


# -- allowed values, regex ------------------------------------------------------------------------
def test_allowed_values_fail_unknown_values_and_pass_nulls():
    _, r = run(AllowedValues("c", ["DE", "FR"]), c=["DE", None, "XX", "XX", "YY"])
    assert (r.failed, r.passed) == (3, 2)
    assert r.observed == {"unexpected_distinct": 2}
    assert [e["values"]["c"] for e in r.examples] == ["XX", "XX", "YY"]
    _, r = run(AllowedValues("n", [1, 2]), n=[1, 2, 3])
    assert r.failed == 1
    _, r = run(AllowedValues("b", [True]), b=[True, None, False])
    assert r.failed == 1
    _, r = run(AllowedValues("c", ["x"]), empty(pa.string(), "c"))
    assert r.status == "passed"


def test_regex_matches_the_whole_value_and_casts_non_strings():
    _, r = run(Regex("s", "[a-z]+"), s=["abc", "abc1", None, "A"])
    assert (r.failed, rows_of(r)) == (2, [1, 3])
    _, r = run(Regex("n", r"\d{2}"), n=[10, 5, 123])
    assert r.failed == 2
    _, r = run(Regex("s", ".*b.*"), s=["abc"])
    assert r.status == "passed"


# -- uniqueness, cardinality, row count -----------------------------------------------------------
def test_unique_fails_every_row_of_a_repeated_key_and_ignores_nulls():
    report, r = run(Unique(["k"]), k=[1, 2, 1, None, None, 3, 1])
    assert (r.failed, r.observed) == (3, {"duplicate_keys": 1})
    assert rows_of(r) == [0, 2, 6]
    assert report.invalid_rows.tolist() == [0, 2, 6]


def test_unique_on_the_contract_key_and_on_column_combinations():
    t = pa.table({"k": [1, 1, 2, 2], "t": [1, 2, 1, 1], "x": [0, 0, 0, 0]})
    _, r = run(Unique(), t, key=["k", "t"])
    assert (r.failed, r.columns, rows_of(r)) == (2, ("k", "t"), [2, 3])
    _, r = run(Unique(["k", "x"]), t)
    assert r.failed == 4 and r.observed == {"duplicate_keys": 2}
    _, r = run(Unique(["k"]), empty(name="k"))
    assert r.status == "passed"


def test_cardinality_counts_distinct_non_null_values_with_inclusive_bounds():
    _, r = run(Cardinality("c", 2, 2), c=["a", "b", "a", None])
    assert r.status == "passed" and r.observed == {"distinct": 2}
    assert r.passed is None and r.failed is None
    _, r = run(Cardinality("c", max=1), c=["a", "b"])
    assert r.status == "failed"
    _, r = run(Cardinality("c", min=1), empty(pa.string(), "c"))
    assert r.status == "failed" and r.observed == {"distinct": 0}


def test_row_count_bounds_per_batch():
    _, r = run(RowCount(1, 3), a=[1, 2, 3])
    assert r.status == "passed" and r.observed == {"rows": 3}
    _, r = run(RowCount(max=2), a=[1, 2, 3])
    assert r.status == "failed"
    report, r = run(RowCount(min=1), empty())
    assert r.status == "failed" and not report.ok and not report.splittable


# -- SQL predicates -------------------------------------------------------------------------------
def test_cross_column_check_fails_only_false_rows():
    report, r = run(
        Check("amount >= 0 OR refunded"),
        amount=[5.0, -1.0, -2.0, None, None],
        refunded=[False, True, False, False, True],
    )
    assert (r.failed, rows_of(r)) == (1, [2])
    assert r.columns == ("amount", "refunded")
    assert report.invalid_rows.tolist() == [2]


def test_custom_sql_predicate_with_functions():
    _, r = run(
        Check("length(code) = 3 AND upper(code) = code", name="code_shape"),
        code=["ABC", "abc", "ABCD", None],
    )
    assert (r.name, r.failed, rows_of(r)) == ("code_shape", 2, [1, 2])


def test_a_check_that_cannot_run_fails_alone_and_the_rest_still_evaluates():
    contract = Contract(
        "ds",
        rules=[
            Check("no_such_column > 1"),
            Range("a", 0, 1),
            Check("a > 'not a number'", name="bad_cast"),
        ],
    )
    report = evaluate(contract, pa.table({"a": [0.5, 2.0]}), now=NOW)
    bad = report["check(no_such_column > 1)"]
    assert bad.status == "failed" and "could not evaluate" in bad.error
    assert report["bad_cast"].status == "failed" and report["bad_cast"].error
    assert report["range(a)"].failed == 1
    assert report.invalid_rows.tolist() == [1]
    assert not report.splittable


def test_a_python_regex_that_re2_rejects_fails_with_an_error():
    _, r = run(Regex("s", "(?=a)a"), s=["a"])
    assert r.status == "failed" and "could not evaluate" in r.error


def test_sql_cannot_reach_outside_the_batch():
    _, r = run(Check("(SELECT count(*) FROM read_csv('/etc/passwd')) > 0"), a=[1])
    assert r.status == "failed" and r.error


# -- distribution ---------------------------------------------------------------------------------
def test_distribution_passes_a_similar_sample_and_fails_a_shifted_one():
    rng = np.random.default_rng(1)
    ref = {"x": rng.normal(size=4000)}
    rule = Distribution("x", max_psi=0.1, max_ks=0.1)
    _, r = run(rule, x=rng.normal(size=4000), reference=ref)
    assert r.status == "passed" and r.observed["psi"] < 0.1 and r.observed["ks"] < 0.1
    _, r = run(rule, x=rng.normal(1.0, size=4000), reference=pa.table(ref))
    assert r.status == "failed" and r.observed["ks"] > 0.3
    assert "KS" in r.message and r.observed["reference_rows"] == 4000


def test_distribution_on_categories_and_its_skips():
    ref = {"c": ["a"] * 50 + ["b"] * 50}
    _, r = run(Distribution("c", max_psi=0.1), c=["a"] * 50 + ["b"] * 50, reference=ref)
    assert r.status == "passed" and r.observed["psi"] == 0.0
    _, r = run(Distribution("c", max_psi=0.1), c=["a"] * 90 + ["b"] * 10, reference=ref)
    assert r.status == "failed"
    _, r = run(Distribution("c", max_ks=0.1), c=["a"], reference=ref)
    assert r.status == "failed" and "numeric" in r.message
    report, r = run(Distribution("c", max_psi=0.1), c=["a"])
    assert r.status == "skipped" and report.ok and report.skipped == (r,)
    _, r = run(Distribution("c", max_psi=0.1), c=["a"], reference={"other": [1]})
    assert r.status == "skipped"
    _, r = run(Distribution("c", max_psi=0.1), empty(pa.string(), "c"), reference=ref)
    assert r.status == "skipped"


# -- SLOs -----------------------------------------------------------------------------------------
def test_freshness_judges_the_newest_event_time_against_now():
    t = pa.array([NOW - timedelta(hours=5), NOW - timedelta(hours=2), None], TS)
    _, r = run(Freshness("t", "3h"), t=t)
    assert r.status == "passed" and r.observed["age_seconds"] == 7200
    _, r = run(Freshness("t", "1h"), t=t)
    assert r.status == "failed" and "2h old" in r.message
    _, r = run(Freshness("t", "1h"), t=t, now=NOW + timedelta(hours=10))
    assert r.observed["age_seconds"] == 12 * 3600


def test_freshness_fails_when_there_is_no_event_time():
    _, r = run(Freshness("t", "1h"), empty(TS, "t"))
    assert r.status == "failed" and r.observed["newest"] is None
    _, r = run(Freshness("t", "1h"), t=pa.array([None], TS))
    assert r.status == "failed"


def test_freshness_on_a_date_column_uses_the_start_of_the_day():
    _, r = run(Freshness("d", "1d"), d=[date(2024, 5, 31)])
    assert r.status == "passed" and r.observed["age_seconds"] == 86400


def test_now_must_be_aware():
    with pytest.raises(TimestampError, match="time-zone aware"):
        run(Freshness("t", "1h"), t=pa.array([NOW], TS), now=datetime(2024, 1, 1))


def test_ingestion_delay_counts_late_rows_without_marking_them_invalid():
    t = pa.array([NOW, NOW, NOW, None], TS)
    c = pa.array([NOW + timedelta(minutes=5), NOW + timedelta(hours=2), None, NOW], TS)
    report, r = run(IngestionDelay("t", "c", "1h"), t=t, c=c)
    assert (r.status, r.failed, rows_of(r)) == ("failed", 1, [1])
    assert r.observed["max_delay_seconds"] == 7200
    assert len(report.invalid_rows) == 0 and report.batch_errors == (r,)
    _, r = run(IngestionDelay("t", "c", "2h"), t=t, c=c)
    assert r.status == "passed"


# -- schema rules ---------------------------------------------------------------------------------
def test_declared_columns_must_exist_with_a_lossless_type():
    contract = Contract(
        "ds", columns=[Column("a", "int64"), Column("b", "int32"), "c", Column("d", "float64")]
    )
    t = pa.table({"a": pa.array([1], pa.int32()), "b": pa.array([1.5]), "c": ["x"]})
    report = evaluate(contract, t, now=NOW)
    assert report["type(a)"].status == "passed"
    assert report["type(b)"].status == "failed" and report["type(b)"].observed == {
        "type": "float64"
    }
    assert report["type(c)"].status == "passed"
    assert report["type(d)"].status == "failed" and "missing" in report["type(d)"].message
    assert not report.splittable


def test_rules_on_a_missing_column_fail_with_an_error_and_others_still_run():
    contract = Contract("ds", rules=[Range("gone", 0), NotNull("a")])
    report = evaluate(contract, pa.table({"a": [1, None]}), now=NOW)
    assert report["range(gone)"].status == "failed"
    assert "missing" in report["range(gone)"].error
    assert report["not_null(a)"].failed == 1


# -- severities and the report --------------------------------------------------------------------
def contract_with_severities() -> Contract:
    return Contract(
        "tx",
        columns=[
            Column("id", "int64", nullable=False),
            Column("amount", "float64"),
            Column("country", "string"),
        ],
        rules=[
            Range("amount", 0, 100),
            AllowedValues("country", ["DE"], severity="warn"),
            RowCount(min=1),
        ],
        key=["id"],
    )


BATCH = pa.table(
    {
        "id": pa.array([1, 2, None, 4, 5, 6, 7, 8], pa.int64()),
        "amount": [1.0, -5.0, 3.0, 500.0, 2.0, 3.0, -1.0, -2.0],
        "country": ["DE", "DE", "FR", "DE", "FR", "DE", "DE", "DE"],
    }
)


def test_warn_failures_do_not_fail_the_report_or_mark_rows():
    contract = Contract(
        "tx", columns=["country"], rules=[AllowedValues("country", ["DE"], severity="warn")]
    )
    report = evaluate(contract, BATCH.select(["country"]), now=NOW)
    assert report.ok and report.errors == ()
    assert [w.name for w in report.warnings] == ["allowed_values(country)"]
    assert len(report.invalid_rows) == 0
    assert report.row_failures.to_pylist() == [
        {"row": 2, "rules": ["allowed_values(country)"]},
        {"row": 4, "rules": ["allowed_values(country)"]},
    ]
    report.raise_for_errors()  # no error rule failed: nothing raised


def test_report_lists_errors_warnings_and_invalid_rows():
    report = evaluate(contract_with_severities(), BATCH, now=NOW)
    assert not report.ok
    assert [r.name for r in report.errors] == ["not_null(id)", "range(amount)"]
    assert [r.name for r in report.warnings] == ["allowed_values(country)"]
    assert report.invalid_rows.tolist() == [1, 2, 3, 6, 7]
    assert report.invalid_mask.tolist() == [False, True, True, True, False, False, True, True]
    assert report.splittable and report.rows == 8
    rng = report["range(amount)"]
    assert (rng.failed, rng.passed, rng.severity, rng.columns) == (4, 4, "error", ("amount",))
    assert rng.observed == {"min": -5.0, "max": 500.0}
    # examples carry the rule's columns and the key, in batch order
    assert rng.examples[0] == {"row": 1, "values": {"amount": -5.0, "id": 2}}


def test_examples_are_capped():
    report = evaluate(
        Contract("ds", rules=[Range("a", 0)]), pa.table({"a": [-1] * 20}), now=NOW, max_examples=3
    )
    assert rows_of(report["range(a)"]) == [0, 1, 2]
    assert report["range(a)"].failed == 20


def test_split_publishes_valid_rows_and_holds_back_the_rest_with_rule_names():
    report = evaluate(contract_with_severities(), BATCH, now=NOW)
    valid, invalid = report.split(BATCH)
    assert valid.num_rows + invalid.num_rows == BATCH.num_rows
    assert valid.column("id").to_pylist() == [1, 5, 6]
    assert invalid.column("id").to_pylist() == [2, None, 4, 7, 8]
    assert invalid.column(FAILED_RULES_COLUMN).to_pylist() == [
        ["range(amount)"],
        ["not_null(id)", "allowed_values(country)"],
        ["range(amount)"],
        ["range(amount)"],
        ["range(amount)"],
    ]
    assert evaluate(contract_with_severities(), valid, now=NOW).ok
    with pytest.raises(DataError, match="split the same table"):
        report.split(BATCH.slice(1))


def test_a_clean_batch_splits_into_everything_and_nothing():
    clean = BATCH.filter(pa.array([True, False, False, False, True, True, False, False]))
    report = evaluate(contract_with_severities(), clean, now=NOW)
    assert report.ok and len(report.invalid_rows) == 0
    assert report.row_failures.to_pylist() == [{"row": 1, "rules": ["allowed_values(country)"]}]
    valid, invalid = report.split(clean)
    assert (valid.num_rows, invalid.num_rows) == (3, 0)
    assert invalid.schema.field(FAILED_RULES_COLUMN).type == pa.list_(pa.string())


def test_a_passing_batch_needs_no_second_query_and_has_no_row_failures():
    contract = Contract(
        "ds",
        columns=[Column("a", "int64", nullable=False)],
        rules=[Range("a", 0, 10), Unique(["a"])],
    )
    report = evaluate(contract, pa.table({"a": [1, 2, 3]}), now=NOW)
    assert report.ok and report.row_failures is None and len(report.invalid_rows) == 0
    assert all(r.examples == () for r in report.results)


def test_raise_for_errors_names_rule_column_count_and_examples():
    report = evaluate(contract_with_severities(), BATCH, now=NOW)
    with pytest.raises(ContractViolation) as info:
        report.raise_for_errors("ingest into feature_group/tx@v1")
    err = info.value
    assert isinstance(err, DataError)
    text = str(err)
    assert text.startswith("ingest into feature_group/tx@v1: the batch of 8 row(s) violates 2")
    assert "rule 'range(amount)' on amount: 4 of 8 row(s) outside [0, 100]" in text
    assert "row 1: {'amount': -5.0, 'id': 2}" in text
    assert "allowed_values" not in text  # warnings are not errors
    assert [f["name"] for f in err.failures] == ["not_null(id)", "range(amount)"]
    assert err.report is report and err.rows == 8


def test_to_dict_is_strict_json_and_reads_back():
    contract = Contract("ds", rules=[Range("a", 0, 1), Range("t", max=NOW)])
    t = pa.table({"a": [float("nan"), 0.5], "t": pa.array([NOW + timedelta(1), NOW], TS)})
    report = evaluate(contract, t, now=NOW)
    data = report.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert data["ok"] is False and data["invalid_rows"] == 1
    assert data["summary"] == {
        "rules": 2,
        "passed": 0,
        "failed": 2,
        "skipped": 0,
        "errors": 2,
        "warnings": 0,
    }
    assert data["results"][0]["examples"][0]["values"]["a"] == "NaN"
    back = ValidationReport.from_dict(json.loads(text))
    assert back.to_dict() == data
    assert [r.name for r in back.errors] == ["range(a)", "range(t)"]
    assert str(back).splitlines()[0] == str(report).splitlines()[0]


def test_str_is_a_readable_table():
    text = str(evaluate(contract_with_severities(), BATCH, now=NOW))
    lines = text.splitlines()
    assert lines[0] == (
        "contract tx: FAILED on 8 row(s): 2 error(s), 1 warning(s), 7 rule(s); 5 invalid row(s)"
    )
    assert any(line.startswith("  FAIL range(amount)") for line in lines)
    assert any(line.startswith("  WARN allowed_values(country)") for line in lines)
    assert any(line.startswith("  ok   row_count") for line in lines)
    assert "e.g. row 1: amount=-5.0, id=2" in text


def test_record_batches_are_accepted_and_other_inputs_refused():
    batch = BATCH.to_batches()[0]
    assert evaluate(contract_with_severities(), batch, now=NOW).rows == 8
    with pytest.raises(DataError, match="pyarrow Table"):
        evaluate(contract_with_severities(), {"id": [1]}, now=NOW)  # type: ignore[arg-type]


def test_every_rule_in_one_contract_on_a_larger_batch():
    n = 200_000
    rng = np.random.default_rng(3)
    amount = rng.uniform(0, 100, n)
    amount[[10, 20_000, 199_999]] = -1.0
    t = pa.table(
        {
            "id": np.arange(n),
            "amount": amount,
            "country": rng.choice(["DE", "FR", "IT"], n),
            "t": pa.array(np.full(n, int(NOW.timestamp() * 1e6)), pa.int64()).cast(TS),
        }
    )
    contract = Contract(
        "big",
        columns=[
            Column("id", "int64", nullable=False),
            Column("amount", "float64"),
            "country",
            Column("t", "timestamp", nullable=False),
        ],
        rules=[
            Range("amount", 0, 100),
            MaxNullFraction("amount", 0.01),
            AllowedValues("country", ["DE", "FR", "IT"]),
            Regex("country", "[A-Z]{2}"),
            Unique(),
            Cardinality("country", 1, 3),
            RowCount(1),
            Check("amount < 1000"),
            Distribution("amount", max_psi=0.2),
        ],
        slos=[Freshness("t", "1h"), IngestionDelay("t", "t", "1s")],
        key=["id"],
    )
    report = evaluate(contract, t, now=NOW, reference={"amount": rng.uniform(0, 100, 5000)})
    assert [r.name for r in report.errors] == ["range(amount)"]
    assert report.invalid_rows.tolist() == [10, 20_000, 199_999]
    assert report.seconds < 30
