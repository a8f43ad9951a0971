"""Check a batch against a contract in one vectorized pass.

Every row-level and aggregate rule compiles to SQL fragments: a per-row *failure
predicate* (never NULL) and the aggregates that measure what the rule observes. One
DuckDB query over the Arrow batch computes all failing counts and observations at once.
Only when some row-level rule failed does a second query fetch the positions of the
failing rows (for the invalid-row mask, examples and per-row rule names). Schema rules are
judged from the Arrow schema and distribution rules with numpy; nothing loops over rows in
Python.

DuckDB runs with external access disabled, so a contract's SQL can read the batch and
nothing else.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featureledger.contracts.report import RuleResult, Status, ValidationReport
from featureledger.contracts.stats import ks_statistic, psi, psi_categorical
from featureledger.definitions.contract import (
    AllowedValues,
    Cardinality,
    Check,
    ColumnType,
    Contract,
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
    format_duration,
)
from featureledger.definitions.types import _normalize, is_widening, type_name
from featureledger.errors import DataError, TimestampError

if TYPE_CHECKING:
    import duckdb

MAX_EXAMPLES = 5
_BATCH = "__fl_batch"
_ROW = "__fl_row"

Reference: TypeAlias = "pa.Table | Mapping[str, Any]"


def evaluate(
    contract: Contract,
    table: pa.Table | pa.RecordBatch,
    /,
    *,
    now: datetime | None = None,
    reference: Reference | None = None,
    max_examples: int = MAX_EXAMPLES,
) -> ValidationReport:
    """Evaluate every rule of ``contract`` on ``table`` and return the report (never raises
    for failed rules; see `ValidationReport.raise_for_errors`).

    ``now`` is the time freshness SLOs are judged at (default: the current time; must be
    time-zone aware). ``reference`` is the sample distribution rules compare against,
    e.g. the data of a reference version (a table, or a mapping of column to values);
    without it those rules are skipped.
    """
    started = time.perf_counter()
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise DataError(f"evaluate: expected a pyarrow Table, got {type(table).__name__}")
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise TimestampError(
            "evaluate: now must be a time-zone aware datetime, e.g. datetime.now(UTC)"
        )
    ctx = _Context(contract, table, now, reference, max_examples)
    plans = [_compile(rule, i, ctx) for i, rule in enumerate(contract.all_rules)]
    import duckdb  # here, not at the top: the CLI's light commands never evaluate

    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.register(_BATCH, table)
        total = _aggregate(con, plans, ctx)
        invalid, row_failures = _failing_rows(con, plans, ctx)
    finally:
        con.close()
    results = tuple(_judge(p, ctx, total) for p in plans)
    return ValidationReport(
        dataset=contract.dataset,
        rows=total,
        results=results,
        evaluated_at=now,
        seconds=time.perf_counter() - started,
        invalid_rows=invalid,
        row_failures=row_failures,
    )


# -- compilation ----------------------------------------------------------------------------------
@dataclass
class _Context:
    contract: Contract
    table: pa.Table
    now: datetime
    reference: Reference | None
    max_examples: int

    def __post_init__(self) -> None:
        self.types: dict[str, pa.DataType] = {f.name: f.type for f in self.table.schema}


@dataclass
class _Plan:
    rule: Rule
    index: int
    #: SQL that is true when a row fails the rule, never NULL
    fail: str | None = None
    #: row-level rules put their failing rows in the invalid mask (when severity is error)
    in_mask: bool = False
    #: the same test for a WHERE clause, where NULL may stand for false (default: fail)
    where: str | None = None
    #: aggregate SQL counting failing rows (default: count_if(fail))
    count: str | None = None
    #: output key -> aggregate SQL
    aggs: dict[str, str] = field(default_factory=dict)
    #: (alias, window expression) the base relation adds for this rule
    window: tuple[str, str] | None = None
    error: str | None = None
    columns: tuple[str, ...] = ()
    values: dict[str, Any] = field(default_factory=dict)
    examples: tuple[dict[str, Any], ...] = ()

    def alias(self, key: str) -> str:
        return f"r{self.index}_{key}"

    @property
    def failed(self) -> int | None:
        return self.values.get("failed")


def q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: Any) -> str:
    """A DuckDB literal for a contract value (bound or allowed value)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "'inf'::DOUBLE" if value > 0 else "'-inf'::DOUBLE"
        return f"{value!r}::DOUBLE"
    if isinstance(value, datetime):
        return f"TIMESTAMPTZ '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _is_float(dtype: pa.DataType | None) -> bool:
    return dtype is not None and pa.types.is_floating(dtype)


def _epoch_us(col: str, dtype: pa.DataType) -> str:
    return (
        f"epoch_us(CAST({q(col)} AS TIMESTAMP))"
        if pa.types.is_date(dtype)
        else f"epoch_us({q(col)})"
    )


def _compile(rule: Rule, index: int, ctx: _Context) -> _Plan:
    plan = _Plan(rule, index, in_mask=rule.level == "row", columns=rule.columns)
    if isinstance(rule, Unique) and not rule.columns:
        plan.columns = tuple(ctx.contract.key)
    if isinstance(rule, Check):
        plan.columns = tuple(
            c
            for c in ctx.types
            if re.search(
                rf"(?<![\w\"]){re.escape(c)}(?![\w\"])|\"{re.escape(c)}\"", rule.expression
            )
        )
    if isinstance(rule, ColumnType | Distribution | RowCount):
        return plan  # judged without SQL (schema, numpy, the row count)
    missing = [c for c in plan.columns if c not in ctx.types]
    if missing:
        plan.error = f"column(s) {missing} missing from the batch"
        return plan
    c = q(plan.columns[0]) if plan.columns else ""
    dtype = ctx.types.get(plan.columns[0]) if plan.columns else None
    if isinstance(rule, NotNull):
        plan.fail = f"{c} IS NULL"
        plan.count = f"count(*) - count({c})"
    elif isinstance(rule, MaxNullFraction):
        plan.aggs["nulls"] = f"count(*) - count({c})"
    elif isinstance(rule, Range):
        low, high = rule.min, rule.max
        if _is_float(dtype):  # DuckDB sorts NaN above +inf, so a closed upper bound rejects it
            low = -math.inf if low is None else low
            high = math.inf if high is None else high
        inside = " AND ".join(
            [f"{c} >= {literal(low)}"] * (low is not None)
            + [f"{c} <= {literal(high)}"] * (high is not None)
        )
        plan.fail = f"coalesce(NOT ({inside}), false)"
        plan.where = f"NOT ({inside})"
        # counting the rows inside is cheaper than evaluating the negation per row
        plan.count = f"count({c}) - count_if({inside})"
        plan.aggs["min"] = f"min({c})"
        plan.aggs["max"] = f"max({c})"
    elif isinstance(rule, AllowedValues):
        plan.fail = f"coalesce({c} NOT IN ({', '.join(literal(v) for v in rule.values)}), false)"
        plan.aggs["unexpected_distinct"] = f"count(DISTINCT {c}) FILTER (WHERE {plan.fail})"
    elif isinstance(rule, Regex):
        text = c if dtype is not None and pa.types.is_string(dtype) else f"CAST({c} AS VARCHAR)"
        plan.fail = f"coalesce(NOT regexp_full_match({text}, {literal(rule.pattern)}), false)"
    elif isinstance(rule, Unique):
        alias = f"__fl_w{index}"
        keys = ", ".join(q(k) for k in plan.columns)
        plan.window = (alias, f"count(*) OVER (PARTITION BY {keys})")
        not_null = " AND ".join(f"{q(k)} IS NOT NULL" for k in plan.columns)
        plan.fail = f"({alias} > 1 AND {not_null})"
        plan.aggs["duplicate_keys"] = f"round(sum(1.0 / {alias}) FILTER (WHERE {plan.fail}))"
    elif isinstance(rule, Cardinality):
        plan.aggs["distinct"] = f"count(DISTINCT {c})"
    elif isinstance(rule, Check):
        plan.fail = f"(({rule.expression}) IS FALSE)"
    elif isinstance(rule, Freshness):
        plan.aggs["newest"] = f"max({c})"
    elif isinstance(rule, IngestionDelay):
        e, cr = rule.event_column, rule.created_column
        delay = f"({_epoch_us(cr, ctx.types[cr])} - {_epoch_us(e, ctx.types[e])})"
        plan.fail = f"coalesce({delay} > {rule.max_delay // timedelta(microseconds=1)}, false)"
        plan.aggs["max_delay_us"] = f"max({delay})"
    return plan


# -- the one aggregate pass -----------------------------------------------------------------------
def _base(plans: list[_Plan], source: str) -> str:
    windows = [
        f"{expr} AS {alias}"
        for p in plans
        if p.error is None and p.window
        for alias, expr in [p.window]
    ]
    return f"(SELECT *, {', '.join(windows)} FROM {source})" if windows else source


def _select_items(plan: _Plan) -> list[str]:
    items = []
    if plan.fail is not None:
        items.append(f"{plan.count or f'count_if({plan.fail})'} AS {plan.alias('failed')}")
    items += [f"{sql} AS {plan.alias(key)}" for key, sql in plan.aggs.items()]
    return items


def _aggregate(con: duckdb.DuckDBPyConnection, plans: list[_Plan], ctx: _Context) -> int:
    """Run every rule's aggregates in one query and store them on the plans; returns the
    row count. A rule whose SQL cannot run is marked with its error and the rest re-run."""
    import duckdb

    active = [p for p in plans if p.error is None and (p.fail or p.aggs)]
    try:
        row = _fetch_one(con, active, [f"count(*) AS {q('__fl_n')}"])
    except duckdb.Error:
        for p in active:  # find the culprit(s): each rule alone
            try:
                _fetch_one(con, [p], [])
            except duckdb.Error as exc:
                p.error = _sql_error(exc)
        active = [p for p in active if p.error is None]
        row = _fetch_one(con, active, [f"count(*) AS {q('__fl_n')}"])
    for p in active:
        prefix = p.alias("")
        p.values = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
    return int(row["__fl_n"])


def _fetch_one(
    con: duckdb.DuckDBPyConnection, plans: list[_Plan], extra: list[str]
) -> dict[str, Any]:
    items = extra + [item for p in plans for item in _select_items(p)]
    if not items:
        return {}
    rel = con.sql(f"SELECT {', '.join(items)} FROM {_base(plans, _BATCH)}")
    # through Arrow: aware timestamps convert without pytz, which DuckDB's fetchall needs
    return rel.to_arrow_table().to_pylist()[0]


def _sql_error(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"could not evaluate: {text}"


# -- failing rows ---------------------------------------------------------------------------------
def _failing_rows(
    con: duckdb.DuckDBPyConnection, plans: list[_Plan], ctx: _Context
) -> tuple[np.ndarray, pa.Table | None]:
    """Positions of rows failing error-severity row rules, per-row rule names, and
    examples for every rule that counted failing rows; one query, only when needed."""
    failing = [p for p in plans if p.error is None and p.fail is not None and p.failed]
    if not failing:
        return np.zeros(0, np.int64), None
    n = ctx.table.num_rows
    row_col = _ROW
    while row_col in ctx.types:
        row_col = "_" + row_col
    con.register(
        "__fl_positioned", ctx.table.append_column(row_col, pa.array(np.arange(n, dtype=np.int64)))
    )
    flags = [f"{p.fail} AS f{i}" for i, p in enumerate(failing)]
    where = " OR ".join(p.where or p.fail for p in failing)  # type: ignore[misc]
    found = con.sql(
        f"SELECT {q(row_col)}, {', '.join(flags)} FROM {_base(failing, '__fl_positioned')} "
        f"WHERE {where} ORDER BY {q(row_col)}"
    ).to_arrow_table()
    rows = found.column(0).to_numpy()
    matrix = np.column_stack(
        [found.column(i + 1).to_numpy(zero_copy_only=False) for i in range(len(failing))]
    ).astype(bool)
    for j, p in enumerate(failing):
        take = rows[matrix[:, j]][: ctx.max_examples]
        p.examples = _examples(ctx, p, take)
    in_mask = [j for j, p in enumerate(failing) if p.in_mask]
    if not in_mask:
        return np.zeros(0, np.int64), None
    sub = matrix[:, in_mask]
    any_row = sub.any(axis=1)
    sub, row_ids = sub[any_row], rows[any_row]
    names = np.array([failing[j].rule.name for j in in_mask], dtype=object)
    _, c_idx = np.nonzero(sub)  # row-major: grouped by row, rules in report order
    offsets = np.concatenate([[0], np.cumsum(sub.sum(axis=1))]).astype(np.int32)
    rules = pa.ListArray.from_arrays(pa.array(offsets), pa.array(names[c_idx], pa.string()))
    row_failures = pa.table({"row": pa.array(row_ids, pa.int64()), "rules": rules})
    errors = [k for k, j in enumerate(in_mask) if failing[j].rule.severity == "error"]
    invalid = row_ids[sub[:, errors].any(axis=1)] if errors else np.zeros(0, np.int64)
    return invalid.astype(np.int64), row_failures


def _examples(ctx: _Context, plan: _Plan, positions: np.ndarray) -> tuple[dict[str, Any], ...]:
    cols = list(dict.fromkeys([*plan.columns, *ctx.contract.key]))
    cols = [c for c in cols if c in ctx.types] or list(ctx.types)[:10]
    picked = ctx.table.select(cols).take(pa.array(positions, pa.int64())).to_pylist()
    return tuple({"row": int(i), "values": v} for i, v in zip(positions, picked, strict=True))


# -- judging --------------------------------------------------------------------------------------
def _judge(plan: _Plan, ctx: _Context, rows: int) -> RuleResult:
    rule = plan.rule
    status: Status = "passed"
    passed: int | None = None
    failed: int | None = None
    observed: dict[str, Any] = {}
    if plan.error is not None:
        return _result(plan, "failed", plan.error, error=plan.error)
    v = plan.values
    if plan.fail is not None and v.get("failed") is not None:
        failed = int(v["failed"])
        passed = rows - failed
        status = "failed" if failed else "passed"
    message = ""
    if isinstance(rule, ColumnType):
        status, message, observed = _judge_type(rule, ctx)
    elif isinstance(rule, NotNull):
        observed = {"nulls": failed, "null_fraction": _fraction(failed, rows)}
        message = _rows_msg(failed, rows, "null")
    elif isinstance(rule, MaxNullFraction):
        nulls = int(v["nulls"])
        frac = _fraction(nulls, rows)
        passed, failed = rows - nulls, nulls
        observed = {"nulls": nulls, "null_fraction": frac}
        status = "failed" if frac is not None and frac > rule.max_fraction else "passed"
        shown = "n/a (no rows)" if frac is None else f"{frac:.4g}"
        message = (
            f"null fraction {shown} (max {rule.max_fraction:g}; {nulls:,} of {rows:,} row(s) null)"
        )
    elif isinstance(rule, Range):
        observed = {"min": v.get("min"), "max": v.get("max")}
        bounds = f"[{_fmt(rule.min, '-inf')}, {_fmt(rule.max, 'inf')}]"
        message = (
            _rows_msg(failed, rows, f"outside {bounds}")
            + f" (observed min {_fmt(v.get('min'))}, max {_fmt(v.get('max'))})"
        )
    elif isinstance(rule, AllowedValues):
        observed = {"unexpected_distinct": int(v.get("unexpected_distinct") or 0)}
        message = (
            _rows_msg(failed, rows, "not an allowed value")
            + f" ({observed['unexpected_distinct']} distinct unexpected value(s))"
        )
    elif isinstance(rule, Regex):
        message = _rows_msg(failed, rows, f"not matching {rule.pattern!r}")
    elif isinstance(rule, Unique):
        observed = {"duplicate_keys": int(v.get("duplicate_keys") or 0)}
        message = (
            _rows_msg(failed, rows, f"sharing ({', '.join(plan.columns)})")
            + f" ({observed['duplicate_keys']} repeated key(s))"
        )
    elif isinstance(rule, Cardinality):
        distinct = int(v["distinct"])
        observed = {"distinct": distinct}
        status = _in_bounds(distinct, rule.min, rule.max)
        message = f"{distinct:,} distinct value(s), expected " + _bounds_text(rule.min, rule.max)
    elif isinstance(rule, RowCount):
        observed = {"rows": rows}
        status = _in_bounds(rows, rule.min, rule.max)
        message = f"{rows:,} row(s), expected " + _bounds_text(rule.min, rule.max)
    elif isinstance(rule, Check):
        message = _rows_msg(failed, rows, f"where ({rule.expression}) is false")
    elif isinstance(rule, Distribution):
        status, message, observed = _judge_distribution(rule, ctx)
    elif isinstance(rule, Freshness):
        status, message, observed = _judge_freshness(rule, v.get("newest"), ctx.now)
    elif isinstance(rule, IngestionDelay):
        worst = v.get("max_delay_us")
        observed = {
            "late_rows": failed,
            "max_delay_seconds": None if worst is None else worst / 1e6,
        }
        shown = "n/a" if worst is None else format_duration(timedelta(microseconds=int(worst)))
        message = (
            _rows_msg(
                failed,
                rows,
                f"arrived later than {format_duration(rule.max_delay)} after their event time",
            )
            + f" (max delay {shown})"
        )
    return _result(plan, status, message, passed=passed, failed=failed, observed=observed)


def _result(
    plan: _Plan,
    status: Status,
    message: str,
    *,
    passed: int | None = None,
    failed: int | None = None,
    observed: dict[str, Any] | None = None,
    error: str | None = None,
) -> RuleResult:
    rule = plan.rule
    return RuleResult(
        name=rule.name,
        kind=rule.kind,
        columns=plan.columns,
        severity=rule.severity,
        level=rule.level,
        status=status,
        message=message,
        passed=passed,
        failed=failed,
        observed=observed or {},
        examples=plan.examples if status == "failed" else (),
        error=error,
    )


def _judge_type(rule: ColumnType, ctx: _Context) -> tuple[Status, str, dict[str, Any]]:
    actual = ctx.types.get(rule.column)
    expected = "any type" if rule.dtype is None else type_name(rule.dtype)
    if actual is None:
        return "failed", f"column missing from the batch (expected {expected})", {"type": None}
    shown = type_name(_normalize(actual))
    observed = {"type": shown}
    if rule.dtype is None or is_widening(_normalize(actual), rule.dtype):
        return "passed", f"{shown} (expected {expected})", observed
    return "failed", f"type {shown} does not convert to {expected} without loss", observed


def _judge_freshness(
    rule: Freshness, newest: Any, now: datetime
) -> tuple[Status, str, dict[str, Any]]:
    if newest is None:
        return (
            "failed",
            f"no {rule.column} value to judge freshness by",
            {"newest": None, "age_seconds": None},
        )
    if not isinstance(newest, datetime):  # a date column: the start of that day, UTC
        newest = datetime(newest.year, newest.month, newest.day, tzinfo=UTC)
    if newest.utcoffset() is None:
        newest = newest.replace(tzinfo=UTC)
    age = now - newest
    observed = {"newest": newest, "age_seconds": age.total_seconds(), "now": now}
    status: Status = "passed" if age <= rule.max_age else "failed"
    shown = format_duration(age) if age >= timedelta(0) else f"-{format_duration(-age)}"
    return (
        status,
        f"newest {rule.column} is {shown} old at {now.isoformat()} (max "
        f"{format_duration(rule.max_age)})",
        observed,
    )


def _judge_distribution(rule: Distribution, ctx: _Context) -> tuple[Status, str, dict[str, Any]]:
    if rule.column not in ctx.types:
        return "failed", f"column {rule.column!r} missing from the batch", {}
    if ctx.reference is None:
        return "skipped", "no reference sample given", {}
    ref = _reference_values(ctx.reference, rule.column)
    if ref is None:
        return "skipped", f"the reference has no column {rule.column!r}", {}
    cur = pc.drop_null(ctx.table.column(rule.column))
    ref = pc.drop_null(ref)
    numeric = _numeric(cur.type) and _numeric(ref.type)
    observed: dict[str, Any] = {"rows": len(cur), "reference_rows": len(ref)}
    if len(cur) == 0 or len(ref) == 0:
        return "skipped", "no non-null values on one side to compare", observed
    if not numeric and rule.max_ks is not None:
        return "failed", f"KS needs a numeric column; {rule.column} is {cur.type}", observed
    problems = []
    if numeric:
        a, b = _as_float(ref), _as_float(cur)
        observed["psi"] = psi(a, b, bins=rule.bins)
        observed["ks"] = ks_statistic(a, b)
    else:
        observed["psi"] = psi_categorical(
            ref.to_numpy(zero_copy_only=False), cur.to_numpy(zero_copy_only=False)
        )
    for label, limit in (("psi", rule.max_psi), ("ks", rule.max_ks)):
        if limit is not None and not observed[label] <= limit:
            problems.append(f"{label.upper()} {observed[label]:.4g} > {limit:g}")
    measured = ", ".join(f"{k.upper()} {observed[k]:.4g}" for k in ("psi", "ks") if k in observed)
    if problems:
        return "failed", "; ".join(problems) + f" vs the reference ({measured})", observed
    return "passed", f"{measured} vs the reference", observed


def _reference_values(reference: Reference, column: str) -> pa.ChunkedArray | None:
    if isinstance(reference, pa.Table):
        return reference.column(column) if column in reference.column_names else None
    if column not in reference:
        return None
    values = reference[column]
    if isinstance(values, pa.ChunkedArray):
        return values
    return pa.chunked_array([values if isinstance(values, pa.Array) else pa.array(values)])


def _numeric(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_decimal(dtype)
        or pa.types.is_temporal(dtype)
    )


def _as_float(values: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_temporal(values.type):
        values = (
            values.cast(pa.int64())
            if not pa.types.is_date32(values.type)
            else values.cast(pa.int32()).cast(pa.int64())
        )
    return values.cast(pa.float64()).to_numpy()


def _fraction(part: int | None, whole: int) -> float | None:
    return None if part is None or whole == 0 else part / whole


def _rows_msg(failed: int | None, rows: int, what: str) -> str:
    if not failed:
        return f"0 of {rows:,} row(s) {what}"
    return f"{failed:,} of {rows:,} row(s) {what}"


def _in_bounds(value: int, low: int | None, high: int | None) -> Status:
    ok = (low is None or value >= low) and (high is None or value <= high)
    return "passed" if ok else "failed"


def _bounds_text(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"{_fmt(low)}..{_fmt(high)}"
    return f">= {_fmt(low)}" if low is not None else f"<= {_fmt(high)}"


def _fmt(value: Any, none: str = "n/a") -> str:
    if value is None:
        return none
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return repr(value)
