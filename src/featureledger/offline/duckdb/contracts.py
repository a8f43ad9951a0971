"""Contract scans in DuckDB: every rule's measurements in one vectorized pass.

Each row-level or aggregate rule compiles to SQL fragments: a per-row *failure predicate*
(never NULL) and the aggregates that measure what the rule observes. One query over the
Arrow table computes all failing counts and observations at once. Only when some rule
failed does a second query fetch the positions of the failing rows. The connection is
sandboxed (`_sql.sandbox`), so a contract's `Check` SQL reads the table and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import duckdb

from featureledger.definitions.contract import (
    AllowedValues,
    Cardinality,
    Check,
    Freshness,
    IngestionDelay,
    MaxNullFraction,
    NotNull,
    Range,
    Regex,
    Rule,
    Unique,
)
from featureledger.offline.base import ContractScan, RuleScan
from featureledger.offline.duckdb._sql import q, sandbox

_BATCH = "__fl_batch"
_ROW = "__fl_row"


def scan(table: pa.Table, rules: Sequence[Rule]) -> ContractScan:
    """`OfflineEngine.contract_scan` in DuckDB."""
    types = {f.name: f.type for f in table.schema}
    plans = [_compile(rule, i, types) for i, rule in enumerate(rules)]
    con = sandbox()
    try:
        con.register(_BATCH, table)
        total = _aggregate(con, plans)
        _failing_rows(con, plans, table, types)
    finally:
        con.close()
    return ContractScan(
        total,
        tuple(
            RuleScan(
                failed=None if p.fail is None or p.error else _int(p.values.get("failed")),
                observed={k: v for k, v in p.values.items() if k != "failed"},
                failing_rows=p.failing,
                error=p.error,
            )
            for p in plans
        ),
    )


@dataclass
class _Plan:
    rule: Rule
    index: int
    #: SQL that is true when a row fails the rule, never NULL
    fail: str | None = None
    #: the same test for a WHERE clause, where NULL may stand for false (default: fail)
    where: str | None = None
    #: aggregate SQL counting failing rows (default: count_if(fail))
    count: str | None = None
    #: output key -> aggregate SQL
    aggs: dict[str, str] = field(default_factory=dict)
    #: (alias, window expression) the base relation adds for this rule
    window: tuple[str, str] | None = None
    error: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    failing: np.ndarray | None = None

    def alias(self, key: str) -> str:
        return f"r{self.index}_{key}"


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


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


def _epoch_us(col: str, dtype: pa.DataType) -> str:
    return (
        f"epoch_us(CAST({q(col)} AS TIMESTAMP))"
        if pa.types.is_date(dtype)
        else f"epoch_us({q(col)})"
    )


def _compile(rule: Rule, index: int, types: dict[str, pa.DataType]) -> _Plan:
    plan = _Plan(rule, index)
    cols = rule.columns
    c = q(cols[0]) if cols else ""
    dtype = types.get(cols[0]) if cols else None
    if isinstance(rule, NotNull):
        plan.fail = f"{c} IS NULL"
        plan.count = f"count(*) - count({c})"
    elif isinstance(rule, MaxNullFraction):
        plan.aggs["nulls"] = f"count(*) - count({c})"
    elif isinstance(rule, Range):
        low, high = rule.min, rule.max
        if dtype is not None and pa.types.is_floating(dtype):
            # DuckDB sorts NaN above +inf, so a closed upper bound rejects it
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
        keys = ", ".join(q(k) for k in cols)
        plan.window = (alias, f"count(*) OVER (PARTITION BY {keys})")
        not_null = " AND ".join(f"{q(k)} IS NOT NULL" for k in cols)
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
        delay = f"({_epoch_us(cr, types[cr])} - {_epoch_us(e, types[e])})"
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


def _aggregate(con: duckdb.DuckDBPyConnection, plans: list[_Plan]) -> int:
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
    con: duckdb.DuckDBPyConnection,
    plans: list[_Plan],
    table: pa.Table,
    types: dict[str, pa.DataType],
) -> None:
    """Positions of the failing rows of every rule that counted some; one query, only
    when needed."""
    failing = [
        p for p in plans if p.error is None and p.fail is not None and p.values.get("failed")
    ]
    if not failing:
        return
    row_col = _ROW
    while row_col in types:
        row_col = "_" + row_col
    n = table.num_rows
    con.register(
        "__fl_positioned", table.append_column(row_col, pa.array(np.arange(n, dtype=np.int64)))
    )
    flags = [f"{p.fail} AS f{i}" for i, p in enumerate(failing)]
    where = " OR ".join(p.where or p.fail for p in failing)  # type: ignore[misc]
    found = con.sql(
        f"SELECT {q(row_col)}, {', '.join(flags)} FROM {_base(failing, '__fl_positioned')} "
        f"WHERE {where} ORDER BY {q(row_col)}"
    ).to_arrow_table()
    rows = found.column(0).to_numpy()
    for j, p in enumerate(failing):
        flag = found.column(j + 1).to_numpy(zero_copy_only=False).astype(bool)
        p.failing = rows[flag]
