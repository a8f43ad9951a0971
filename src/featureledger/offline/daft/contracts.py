"""Contract scans as Daft plans (`OfflineEngine.contract_scan`), run by the workers.

Each rule becomes Daft expressions: a per-row failure test (never NULL) and the
aggregates it observes, all measured in one global aggregation that the workers compute
per partition and Daft combines. `Unique` is a grouped count per key (the duplicated keys
are joined back only when failing rows are asked for). Positions of failing rows come
from one filtered query, sorted on the driver.

A `Check` is parsed by Daft's SQL expression parser (``daft.sql_expr``). Simple
comparisons and arithmetic mean the same as in DuckDB; an expression Daft cannot parse
or plan (DuckDB-only functions such as ``regexp_full_match``) is measured by the
driver's DuckDB engine instead (``fallback``), as pipeline SQL is (`sql.py`): checks are
written in DuckDB's dialect, and a contract must not fail on one engine and pass on
another. `Regex` matches
Rust's regex syntax (``^(?:pattern)$``), which agrees with RE2's for the common subset;
non-text columns are matched as Daft's text cast (floats print as ``0.5``, ``NaN``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

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
from featureledger.offline.daft._frames import zero_signs

if TYPE_CHECKING:
    import daft

_POS = "__fl_pos"
log = logging.getLogger(__name__)


@dataclass
class _Plan:
    rule: Rule
    index: int
    #: Daft expression, true when a row fails, never NULL (Unique: computed separately)
    fail: Any = None
    #: observation key -> aggregate expression
    aggs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    failing: np.ndarray | None = None

    def alias(self, key: str) -> str:
        return f"r{self.index}_{key}"


def scan(table: pa.Table, rules: Sequence[Rule], *, fallback: Any = None) -> ContractScan:
    """`OfflineEngine.contract_scan` in Daft; a `Check` Daft cannot parse or run is
    measured by ``fallback`` (the driver's DuckDB engine), if given."""
    import daft

    types = {f.name: f.type for f in table.schema}
    pos = pa.array(np.arange(table.num_rows, dtype=np.int64))
    frame = daft.from_arrow(table.append_column(_POS, pos))
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    if floats:
        from daft import col

        frame = frame.with_columns({name: zero_signs(col(name)) for name in floats})
    frame = frame.collect()
    plans = [_compile(rule, i, types) for i, rule in enumerate(rules)]
    total = _aggregate(frame, plans)
    for p in plans:
        if isinstance(p.rule, Unique) and p.error is None:
            _unique(frame, p)
    _failing_rows(frame, plans)
    refused = [p for p in plans if p.error is not None and isinstance(p.rule, Check)]
    measured: dict[int, RuleScan] = {}
    if refused and fallback is not None:
        log.warning(
            "contract checks run on the driver in DuckDB: Daft cannot run %s (%s)",
            ", ".join(p.rule.name for p in refused),
            refused[0].error,
        )
        again = fallback.contract_scan(table, [p.rule for p in refused])
        measured = {p.index: r for p, r in zip(refused, again.rules, strict=True)}
    return ContractScan(
        total,
        tuple(
            measured.get(p.index)
            or RuleScan(
                failed=None
                if (p.fail is None and not isinstance(p.rule, Unique)) or p.error
                else int(p.values.get("failed") or 0),
                observed={k: v for k, v in p.values.items() if k != "failed"},
                failing_rows=p.failing,
                error=p.error,
            )
            for p in plans
        ),
    )


def _compile(rule: Rule, index: int, types: dict[str, pa.DataType]) -> _Plan:
    import daft
    from daft import DataType, col, lit
    from daft.functions import when

    plan = _Plan(rule, index)
    cols = rule.columns
    c = col(cols[0]) if cols else None
    dtype = types.get(cols[0]) if cols else None
    try:
        if isinstance(rule, NotNull):
            assert c is not None
            plan.fail = c.is_null()
        elif isinstance(rule, MaxNullFraction):
            assert c is not None
            plan.aggs["nulls"] = c.count("null")
        elif isinstance(rule, Range):
            assert c is not None
            low, high = rule.min, rule.max
            if dtype is not None and pa.types.is_floating(dtype):
                # NaN lies outside every range, as in DuckDB (which sorts it above +inf)
                low = -math.inf if low is None else low
                high = math.inf if high is None else high
            inside = None
            for bound, op in ((low, "ge"), (high, "le")):
                if bound is not None:
                    test = c >= lit(bound) if op == "ge" else c <= lit(bound)
                    inside = test if inside is None else inside & test
            plan.fail = (~inside).fill_null(False) if inside is not None else lit(False)
            plan.aggs["min"] = c.min()
            plan.aggs["max"] = c.max()
        elif isinstance(rule, AllowedValues):
            assert c is not None
            plan.fail = (~c.is_in(list(rule.values))).fill_null(False)
            plan.aggs["unexpected_distinct"] = when(plan.fail, c).count_distinct()
        elif isinstance(rule, Regex):
            assert c is not None
            text = (
                c if dtype is not None and pa.types.is_string(dtype) else c.cast(DataType.string())
            )
            plan.fail = (~text.regexp(f"^(?:{rule.pattern})$")).fill_null(False)
        elif isinstance(rule, Unique):
            pass  # a grouped count (`_unique`)
        elif isinstance(rule, Cardinality):
            assert c is not None
            plan.aggs["distinct"] = c.count_distinct()
        elif isinstance(rule, Check):
            plan.fail = (~daft.sql_expr(rule.expression)).fill_null(False)
        elif isinstance(rule, Freshness):
            assert c is not None
            plan.aggs["newest"] = c.max()
        elif isinstance(rule, IngestionDelay):
            delay = _epoch_us(rule.created_column) - _epoch_us(rule.event_column)
            limit = rule.max_delay // timedelta(microseconds=1)
            plan.fail = (delay > lit(limit)).fill_null(False)
            plan.aggs["max_delay_us"] = delay.max()
    except Exception as exc:  # Daft's SQL parser refused a Check
        plan.error = _error(exc)
    return plan


def _epoch_us(name: str) -> Any:
    from daft import DataType, col

    return col(name).cast(DataType.timestamp("us")).cast(DataType.int64())


def _error(exc: Exception) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    reason = next((line for line in lines if "REASON" in line), lines[0] if lines else "")
    return f"could not evaluate: {reason.strip() or type(exc).__name__}"


def _items(plan: _Plan) -> list[Any]:
    from daft import DataType

    items = []
    if plan.fail is not None:
        items.append(plan.fail.cast(DataType.int64()).sum().alias(plan.alias("failed")))
    items += [expr.alias(plan.alias(key)) for key, expr in plan.aggs.items()]
    return items


def _aggregate(frame: daft.DataFrame, plans: list[_Plan]) -> int:
    """Every rule's aggregates in one aggregation; a rule Daft cannot run is marked with
    its error (found by running each alone) and the rest run again."""
    from daft import col

    def run(active: list[_Plan]) -> dict[str, Any]:
        items = [col(_POS).count("all").alias("__fl_n")]
        items += [item for p in active for item in _items(p)]
        return frame.agg(*items).to_pylist()[0]

    active = [p for p in plans if p.error is None and (p.fail is not None or p.aggs)]
    try:
        row = run(active)
    except Exception:
        for p in active:
            try:
                run([p])
            except Exception as exc:
                p.error = _error(exc)
        active = [p for p in active if p.error is None]
        row = run(active)
    for p in active:
        prefix = p.alias("")
        p.values = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
    return int(row["__fl_n"])


def _duplicates(frame: daft.DataFrame, keys: Sequence[str]) -> daft.DataFrame:
    from daft import col, lit

    present = frame
    for k in keys:
        present = present.where(col(k).not_null())
    counted = present.groupby(*keys).agg(col(_POS).count().alias("__fl_c"))
    return counted.where(col("__fl_c") > lit(1))


def _unique(frame: daft.DataFrame, plan: _Plan) -> None:
    """Rows whose (non-null) key repeats, and how many keys repeat."""
    from daft import col

    try:
        row = (
            _duplicates(frame, plan.rule.columns)
            .agg(col("__fl_c").count().alias("keys"), col("__fl_c").sum().alias("rows"))
            .to_pylist()[0]
        )
    except Exception as exc:
        plan.error = _error(exc)
        return
    plan.values = {"failed": int(row["rows"] or 0), "duplicate_keys": int(row["keys"] or 0)}


def _failing_rows(frame: daft.DataFrame, plans: list[_Plan]) -> None:
    """Ascending positions of the failing rows of every rule that counted some."""
    from daft import col, lit

    failing = [p for p in plans if p.error is None and p.values.get("failed")]
    if not failing:
        return
    marked = frame
    flags: list[Any] = []
    for j, p in enumerate(failing):
        if isinstance(p.rule, Unique):
            keys: list[Any] = list(p.rule.columns)
            dupes = _duplicates(frame, keys).select(
                *[col(k).alias(f"__fl_u{j}_{n}") for n, k in enumerate(keys)],
                lit(True).alias(f"__fl_d{j}"),
            )
            marked = marked.join(
                dupes,
                left_on=keys,
                right_on=[f"__fl_u{j}_{n}" for n in range(len(keys))],
                how="left",
            )
            flags.append(col(f"__fl_d{j}").fill_null(False).alias(f"f{j}"))
        else:
            flags.append(p.fail.alias(f"f{j}"))
    out = marked.select(col(_POS), *flags)
    any_fail = col("f0")
    for j in range(1, len(failing)):
        any_fail = any_fail | col(f"f{j}")
    found = out.where(any_fail).to_arrow().sort_by(_POS)
    rows = found.column(_POS).to_numpy()
    for j, p in enumerate(failing):
        flag = found.column(f"f{j}").to_numpy(zero_copy_only=False).astype(bool)
        p.failing = rows[flag]
