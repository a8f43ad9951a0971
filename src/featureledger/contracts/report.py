"""Validation reports: what `evaluate` found, rule by rule, and which rows failed.

A report is a value: it never raises by itself. Callers decide -- `raise_for_errors`
turns error-severity failures into a `ContractViolation`; `split` separates the rows a
quarantine policy would publish from those it would hold back.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from featureledger.definitions.contract import RuleLevel, Severity
from featureledger.errors import ContractViolation, DataError

Status = Literal["passed", "failed", "skipped"]

#: the column `ValidationReport.split` adds to invalid rows: names of the rules each failed
FAILED_RULES_COLUMN = "__fl_failed_rules"


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one batch.

    ``passed``/``failed`` count rows for rules with a per-row verdict (row-level rules,
    null counts, late rows) and are ``None`` otherwise. ``observed`` holds what was
    measured (min/max, null fraction, distinct count, PSI, ...); ``examples`` up to a few
    failing rows as ``{"row": index in the batch, "values": {column: value}}``; ``error``
    says why a rule could not be evaluated (it then counts as failed).
    """

    name: str
    kind: str
    columns: tuple[str, ...]
    severity: Severity
    level: RuleLevel
    status: Status
    message: str
    passed: int | None = None
    failed: int | None = None
    observed: Mapping[str, Any] = field(default_factory=dict)
    examples: tuple[Mapping[str, Any], ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "rule": self.kind,
            "columns": list(self.columns),
            "severity": self.severity,
            "level": self.level,
            "status": self.status,
            "message": self.message,
            "passed": self.passed,
            "failed": self.failed,
            "observed": jsonable(dict(self.observed)),
            "examples": jsonable([dict(e) for e in self.examples]),
        }
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleResult:
        return cls(
            name=data["name"],
            kind=data["rule"],
            columns=tuple(data.get("columns", ())),
            severity=data["severity"],
            level=data.get("level", "row"),
            status=data["status"],
            message=data.get("message", ""),
            passed=data.get("passed"),
            failed=data.get("failed"),
            observed=dict(data.get("observed", {})),
            examples=tuple(data.get("examples", ())),
            error=data.get("error"),
        )

    def describe(self) -> str:
        """One line (plus examples) for people: rule, columns, verdict and evidence."""
        text = f"{self.name}: {self.message}"
        if self.examples:
            text += "; e.g. " + "; ".join(format_example(e) for e in self.examples)
        return text


@dataclass(frozen=True, eq=False)  # compared by identity: it holds numpy arrays
class ValidationReport:
    """Every rule's result on one batch, plus the rows that failed row-level rules.

    ``ok`` is true when no error-severity rule failed. ``invalid_rows`` are the batch
    positions of rows failing at least one error-severity row-level rule: the rows a
    quarantine policy holds back. Failed *batch*-level error rules (row count,
    freshness, a missing column, ...) cannot be fixed by dropping rows; `splittable` says
    whether any such rule failed.
    """

    dataset: str
    rows: int
    results: tuple[RuleResult, ...]
    evaluated_at: datetime
    seconds: float = 0.0
    #: positions of invalid rows (sorted); empty after `from_dict`
    invalid_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: rows failing any row-level rule: ``row`` (int64) and ``rules`` (list<string>)
    row_failures: pa.Table | None = None
    invalid_count: int | None = None

    def __post_init__(self) -> None:
        if self.invalid_count is None:
            object.__setattr__(self, "invalid_count", len(self.invalid_rows))

    # -- verdicts ------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> tuple[RuleResult, ...]:
        """Failed error-severity rules."""
        return tuple(r for r in self.results if not r.ok and r.severity == "error")

    @property
    def warnings(self) -> tuple[RuleResult, ...]:
        """Failed warn-severity rules."""
        return tuple(r for r in self.results if not r.ok and r.severity == "warn")

    @property
    def skipped(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if r.status == "skipped")

    @property
    def batch_errors(self) -> tuple[RuleResult, ...]:
        """Failed error rules that judge the batch as a whole (dropping rows cannot fix them)."""
        return tuple(r for r in self.errors if r.level != "row" or r.error is not None)

    @property
    def splittable(self) -> bool:
        """True when every failed error rule is row-level, so publishing the valid rows and
        holding back `invalid_rows` leaves a batch that passes."""
        return not self.batch_errors

    def __getitem__(self, name: str) -> RuleResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(
            f"no rule named {name!r} in the report; rules: {[r.name for r in self.results]}"
        )

    # -- rows ------------------------------------------------------------------------------------
    @property
    def invalid_mask(self) -> np.ndarray:
        """Boolean array over the batch, true for invalid rows."""
        mask = np.zeros(self.rows, dtype=bool)
        mask[self.invalid_rows] = True
        return mask

    def split(self, table: pa.Table) -> tuple[pa.Table, pa.Table]:
        """``(valid, invalid)`` rows of the evaluated ``table``; invalid rows gain a
        `FAILED_RULES_COLUMN` listing every rule (error or warn) each row failed."""
        if table.num_rows != self.rows:
            raise DataError(
                f"split: the report is for {self.rows} rows of {self.dataset!r}, the table "
                f"has {table.num_rows}; split the same table that was evaluated"
            )
        mask = self.invalid_mask
        valid = table.filter(pa.array(~mask))
        invalid = table.take(pa.array(self.invalid_rows, pa.int64()))
        rules: pa.Array = pa.array([], pa.list_(pa.string()))
        if self.row_failures is not None and len(self.invalid_rows):
            fail_rows = self.row_failures.column("row").to_numpy()
            pos = np.searchsorted(fail_rows, self.invalid_rows)
            rules = self.row_failures.column("rules").take(pa.array(pos)).combine_chunks()
        elif len(self.invalid_rows):
            rules = pa.array([[]] * len(self.invalid_rows), pa.list_(pa.string()))
        return valid, invalid.append_column(FAILED_RULES_COLUMN, rules)

    # -- raising ---------------------------------------------------------------------------------
    def raise_for_errors(self, where: str | None = None) -> None:
        """Raise `ContractViolation` when an error-severity rule failed; else do nothing."""
        if self.ok:
            return
        raise ContractViolation(
            where or f"contract {self.dataset!r}",
            [r.to_dict() for r in self.errors],
            rows=self.rows,
            report=self,
        )

    # -- serialization ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (no row masks), for storing with a data version or run."""
        return {
            "dataset": self.dataset,
            "ok": self.ok,
            "rows": self.rows,
            "invalid_rows": self.invalid_count,
            "evaluated_at": self.evaluated_at.isoformat(),
            "seconds": round(self.seconds, 6),
            "summary": {
                "rules": len(self.results),
                "passed": sum(r.status == "passed" for r in self.results),
                "failed": sum(r.status == "failed" for r in self.results),
                "skipped": len(self.skipped),
                "errors": len(self.errors),
                "warnings": len(self.warnings),
            },
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValidationReport:
        return cls(
            dataset=data["dataset"],
            rows=data["rows"],
            results=tuple(RuleResult.from_dict(r) for r in data["results"]),
            evaluated_at=datetime.fromisoformat(data["evaluated_at"]),
            seconds=data.get("seconds", 0.0),
            invalid_count=data.get("invalid_rows", 0),
        )

    def __str__(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        head = (
            f"contract {self.dataset}: {verdict} on {self.rows:,} row(s): "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s), "
            f"{len(self.results)} rule(s)"
        )
        if self.invalid_count:
            head += f"; {self.invalid_count:,} invalid row(s)"
        width = max((len(r.name) for r in self.results), default=0)
        lines = [head]
        for r in self.results:
            mark = {"passed": "ok  ", "skipped": "skip"}.get(
                r.status, "FAIL" if r.severity == "error" else "WARN"
            )
            lines.append(f"  {mark} {r.name:<{width}}  {r.message}")
            lines.extend(f"       {'':<{width}}  e.g. {format_example(e)}" for e in r.examples)
        return "\n".join(lines)


def format_example(example: Mapping[str, Any]) -> str:
    values = ", ".join(f"{k}={_short(v)}" for k, v in dict(example.get("values", {})).items())
    return f"row {example.get('row')}: {values}"


def _short(value: Any) -> str:
    text = repr(jsonable(value))
    return text if len(text) <= 60 else text[:57] + "..."


def jsonable(value: Any) -> Any:
    """``value`` with every leaf turned into something `json.dumps` writes as strict JSON."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | np.ndarray | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)
