"""Check a batch against a contract: the engine measures, this module judges.

Schema rules are judged from the Arrow schema, distribution rules with numpy and row counts
from the scan; every other rule is measured by the offline engine's contract scan
(`OfflineEngine.contract_scan`: failing counts, observations and the positions of failing
rows, in one vectorized pass for DuckDB). This module turns the measurements into the
report: statuses, messages, examples, the invalid-row mask and per-row rule names. Nothing
loops over rows in Python.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeAlias

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
from featureledger.offline import OfflineEngine, default_engine

MAX_EXAMPLES = 5

Reference: TypeAlias = "pa.Table | Mapping[str, Any]"


def evaluate(
    contract: Contract,
    table: pa.Table | pa.RecordBatch,
    /,
    *,
    now: datetime | None = None,
    reference: Reference | None = None,
    max_examples: int = MAX_EXAMPLES,
    engine: OfflineEngine | None = None,
) -> ValidationReport:
    """Evaluate every rule of ``contract`` on ``table`` and return the report (never raises
    for failed rules; see `ValidationReport.raise_for_errors`).

    ``now`` is the time freshness SLOs are judged at (default: the current time; must be
    time-zone aware). ``reference`` is the sample distribution rules compare against,
    e.g. the data of a reference version (a table, or a mapping of column to values);
    without it those rules are skipped. ``engine`` runs the scan (default: an embedded
    DuckDB engine).
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
    plans = [_plan(rule, i, ctx) for i, rule in enumerate(contract.all_rules)]
    asked = [p for p in plans if p.error is None and not isinstance(p.rule, _JUDGED_HERE)]
    total = table.num_rows
    if asked:
        scan = (engine or default_engine()).contract_scan(table, [p.scanned for p in asked])
        total = scan.rows
        for p, found in zip(asked, scan.rules, strict=True):
            p.error = found.error
            p.values = dict(found.observed)
            if found.failed is not None:
                p.values["failed"] = found.failed
            p.failing = found.failing_rows
            if p.failing is not None and len(p.failing):
                p.examples = _examples(ctx, p, p.failing[: ctx.max_examples])
    invalid, row_failures = _row_failures(plans)
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


#: rules judged here without the engine: schema types, distributions, row counts
_JUDGED_HERE = (ColumnType, Distribution, RowCount)


@dataclass
class _Plan:
    rule: Rule
    index: int
    #: the rule as the engine sees it (`Unique` with its columns resolved)
    scanned: Rule
    columns: tuple[str, ...] = ()
    error: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    failing: np.ndarray | None = None
    examples: tuple[dict[str, Any], ...] = ()

    @property
    def failed(self) -> int | None:
        return self.values.get("failed")


def _plan(rule: Rule, index: int, ctx: _Context) -> _Plan:
    plan = _Plan(rule, index, rule, columns=rule.columns)
    if isinstance(rule, Unique) and not rule.columns:
        plan.columns = tuple(ctx.contract.key)
        plan.scanned = dataclasses.replace(rule, columns=plan.columns)
    if isinstance(rule, Check):
        plan.columns = tuple(
            c
            for c in ctx.types
            if re.search(
                rf"(?<![\w\"]){re.escape(c)}(?![\w\"])|\"{re.escape(c)}\"", rule.expression
            )
        )
    if isinstance(rule, _JUDGED_HERE):
        return plan
    missing = [c for c in plan.columns if c not in ctx.types]
    if missing:
        plan.error = f"column(s) {missing} missing from the batch"
    return plan


# -- failing rows ---------------------------------------------------------------------------------
def _row_failures(plans: list[_Plan]) -> tuple[np.ndarray, pa.Table | None]:
    """The invalid-row mask (rows failing an error-severity row rule) and, per failing row,
    the names of the row rules it fails, in report order."""
    masked = [
        (p, p.failing)
        for p in plans
        if p.rule.level == "row" and p.failing is not None and len(p.failing)
    ]
    if not masked:
        return np.zeros(0, np.int64), None
    rows = np.concatenate([found for _, found in masked])
    which = np.concatenate([np.full(len(found), j) for j, (_, found) in enumerate(masked)])
    order = np.lexsort((which, rows))  # grouped by row, rules in report order
    rows, which = rows[order], which[order]
    row_ids, counts = np.unique(rows, return_counts=True)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    names = np.array([p.rule.name for p, _ in masked], dtype=object)
    rules = pa.ListArray.from_arrays(pa.array(offsets), pa.array(names[which], pa.string()))
    row_failures = pa.table({"row": pa.array(row_ids, pa.int64()), "rules": rules})
    errors = [found for p, found in masked if p.rule.severity == "error"]
    invalid = np.unique(np.concatenate(errors)) if errors else np.zeros(0, np.int64)
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
    if v.get("failed") is not None:
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
