"""Data contracts: what a feature group promises about its data. No I/O happens here.

A `Contract` names a dataset, declares its columns (type, nullability, description,
classification) and lists quality rules and service-level objectives (SLOs). Every rule is
a small frozen dataclass with a ``severity`` (``"error"`` fails the contract, ``"warn"``
is only reported) and a human ``name`` derived from the rule unless given.
`featureledger.contracts.evaluate` checks a batch against a contract; docs/contracts.md
lists every rule with its exact semantics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import pyarrow as pa

from featureledger.definitions.field import CLASSIFICATIONS, Classification
from featureledger.definitions.names import check_name
from featureledger.definitions.types import parse_type, type_name
from featureledger.errors import DefinitionError

if TYPE_CHECKING:
    from featureledger.definitions.feature_group import FeatureGroup

Severity = Literal["error", "warn"]
SEVERITIES: tuple[str, ...] = get_args(Severity)

#: ``row`` rules judge each row (failing rows can be split off); ``batch`` rules judge the batch
RuleLevel = Literal["row", "batch"]

#: a bound or allowed value: numbers, strings, dates and time-zone-aware datetimes
Scalar = int | float | str | date | datetime


# -- durations ------------------------------------------------------------------------------------
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(d|h|ms|us|m|s)")
_UNITS: dict[str, timedelta] = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
    "us": timedelta(microseconds=1),
}


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """``"1d12h"``, ``"90s"``, ``"250ms"``, a number of seconds or a timedelta -> timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise DefinitionError(f"a duration must be like '2h', '1d12h' or seconds, got {value!r}")
    try:
        if isinstance(value, int | float):
            return timedelta(seconds=value)
        if isinstance(value, str):
            text = value.replace(" ", "").lower()
            sign, body = (-1, text[1:]) if text.startswith("-") else (1, text)
            parts = _DURATION.findall(body)
            if body and "".join(n + u for n, u in parts) == body:
                total = timedelta(0)
                for number, unit in parts:
                    count = float(number) if "." in number else int(number)
                    total += _UNITS[unit] * count
                return total * sign
    except (OverflowError, ValueError):
        # timedelta holds at most 999,999,999 days; inf and nan are no duration at all
        raise DefinitionError(
            f"duration {value!r} is out of range; durations must be finite and under "
            "999999999 days (about 2.7 million years)"
        ) from None
    raise DefinitionError(
        f"cannot read duration {value!r}; write it like '2h', '1d12h', '90s', '250ms' or as a "
        "number of seconds"
    )


def format_duration(value: timedelta) -> str:
    """The canonical spelling that `parse_duration` reads back exactly:
    ``timedelta(hours=26)`` -> ``"1d2h"``."""
    us = value // timedelta(microseconds=1)
    if us == 0:
        return "0s"
    sign, us = ("-", -us) if us < 0 else ("", us)
    out = []
    for unit, size in (
        ("d", 86_400_000_000),
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1000),
        ("us", 1),
    ):
        count, us = divmod(us, size)
        if count:
            out.append(f"{count}{unit}")
    return sign + "".join(out)


# -- columns --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """A column the contract promises: its type (``None`` accepts any type), whether it may
    hold nulls, what it means and how sensitive it is.

    A non-nullable column implies an error-severity ``not_null(<column>)`` rule; every
    declared column implies a ``type(<column>)`` rule (present, and of a type that converts
    to the declared one without loss).
    """

    name: str
    dtype: pa.DataType | str | None = None
    nullable: bool = True
    description: str = ""
    classification: Classification = "internal"
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("column", self.name)
        if self.dtype is not None:
            object.__setattr__(self, "dtype", parse_type(self.dtype))
        if not isinstance(self.nullable, bool):
            raise DefinitionError(f"column {self.name!r}: nullable must be true or false")
        if self.classification not in CLASSIFICATIONS:
            raise DefinitionError(
                f"column {self.name!r}: classification {self.classification!r} is not one of "
                f"{', '.join(CLASSIFICATIONS)}"
            )
        object.__setattr__(self, "tags", dict(self.tags))

    @property
    def type_name(self) -> str | None:
        return None if self.dtype is None else type_name(self.dtype)


# -- rules ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """Base of every contract rule.

    Subclasses declare ``kind`` (the YAML spelling), ``level`` and their parameters;
    ``severity`` and ``name`` are keyword-only on all of them.
    """

    kind: ClassVar[str] = ""
    level: ClassVar[RuleLevel] = "row"
    #: SLOs live in `Contract.slos` (``slaProperties`` in YAML), other rules in `Contract.rules`
    slo: ClassVar[bool] = False

    severity: Severity = field(default="error", kw_only=True)
    name: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise DefinitionError(
                f"{self.kind} rule: severity must be 'error' or 'warn', got {self.severity!r}"
            )
        self._validate()
        for col in self.columns:
            check_name(f"column of {self.kind} rule", col)
        if not isinstance(self.name, str):
            raise DefinitionError(f"{self.kind} rule: name must be a string, got {self.name!r}")
        if not self.name.strip():
            object.__setattr__(self, "name", self.default_name())

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the rule reads (empty for table-level rules)."""
        col = getattr(self, "column", None)
        return (col,) if col else ()

    def default_name(self) -> str:
        cols = self.columns
        return f"{self.kind}({', '.join(cols)})" if cols else self.kind

    def params(self) -> dict[str, Any]:
        """The rule's own parameters (not severity or name), in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _COMMON}

    def _validate(self) -> None:
        pass

    def _fail(self, problem: str) -> DefinitionError:
        what = self.name or self.default_name()
        return DefinitionError(f"rule {what!r}: {problem}")


_COMMON = frozenset({"severity", "name"})


def _check_bound(rule: Rule, label: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | str | date):
        raise rule._fail(
            f"{label} must be a number, string, date or datetime, got {value!r}"
            + (" (use allowed_values for booleans)" if isinstance(value, bool) else "")
        )
    if isinstance(value, float) and math.isnan(value):
        raise rule._fail(f"{label} must not be NaN")
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise rule._fail(
            f"{label} {value!r} has no time zone; give an aware datetime (e.g. with "
            "tzinfo=UTC) so the bound is one instant"
        )


def _check_order(rule: Rule, low: object, high: object) -> None:
    if low is None or high is None:
        return
    try:
        inverted = high < low  # type: ignore[operator]
    except TypeError as exc:
        raise rule._fail(f"min {low!r} and max {high!r} are not comparable") from exc
    if inverted:
        raise rule._fail(f"min {low!r} is greater than max {high!r}")


def _check_count(rule: Rule, label: str, value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise rule._fail(f"{label} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class NotNull(Rule):
    """Every row has a value in ``column`` (NaN is a value, not a null)."""

    kind: ClassVar[str] = "not_null"
    column: str


@dataclass(frozen=True)
class MaxNullFraction(Rule):
    """At most ``max_fraction`` (0..1, inclusive) of the rows are null in ``column``."""

    kind: ClassVar[str] = "max_null_fraction"
    level: ClassVar[RuleLevel] = "batch"
    column: str
    max_fraction: float

    def _validate(self) -> None:
        f = self.max_fraction
        if isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f <= 1:
            raise self._fail(f"max_fraction must be a number from 0 to 1, got {f!r}")


@dataclass(frozen=True)
class Range(Rule):
    """Non-null values of ``column`` lie in ``[min, max]`` (bounds inclusive; either may be
    left open). NaN is outside every range."""

    kind: ClassVar[str] = "range"
    column: str
    min: Scalar | None = None
    max: Scalar | None = None

    def _validate(self) -> None:
        if self.min is None and self.max is None:
            raise self._fail("give min, max or both")
        _check_bound(self, "min", self.min)
        _check_bound(self, "max", self.max)
        _check_order(self, self.min, self.max)


@dataclass(frozen=True)
class AllowedValues(Rule):
    """Non-null values of ``column`` are among ``values``."""

    kind: ClassVar[str] = "allowed_values"
    column: str
    values: Sequence[Scalar | bool] = ()

    def _validate(self) -> None:
        values = tuple(self.values) if not isinstance(self.values, str) else None
        if not values:
            raise self._fail("values must be a non-empty list")
        for v in values:
            if v is None:
                raise self._fail(
                    "values cannot hold null; nulls always pass allowed_values "
                    "(use not_null or nullable=False to refuse them)"
                )
            if isinstance(v, bool):
                continue
            _check_bound(self, "each value", v)
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class Regex(Rule):
    """Non-null values of ``column`` (as text) match ``pattern`` in full (RE2 syntax)."""

    kind: ClassVar[str] = "regex"
    column: str
    pattern: str

    def _validate(self) -> None:
        if not isinstance(self.pattern, str) or not self.pattern:
            raise self._fail("pattern must be a non-empty string")
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise self._fail(f"pattern {self.pattern!r} is not a valid regex: {exc}") from exc


@dataclass(frozen=True)
class Unique(Rule):
    """No two rows share a value of ``columns`` (the contract's ``key`` when left empty).

    Rows with a null in any of the columns are not compared, as in SQL. Every row of a
    repeated combination fails: the batch alone cannot tell which one is right.
    """

    kind: ClassVar[str] = "unique"
    columns: Sequence[str] = ()  # type: ignore[assignment]

    def default_name(self) -> str:
        return f"unique({', '.join(self.columns)})" if self.columns else "unique(key)"

    def _validate(self) -> None:
        cols = (self.columns,) if isinstance(self.columns, str) else tuple(self.columns)
        if len(set(cols)) != len(cols):
            raise self._fail(f"columns repeat a name: {list(cols)}")
        object.__setattr__(self, "columns", cols)


@dataclass(frozen=True)
class Cardinality(Rule):
    """The number of distinct non-null values of ``column`` lies in ``[min, max]``."""

    kind: ClassVar[str] = "cardinality"
    level: ClassVar[RuleLevel] = "batch"
    column: str
    min: int | None = None
    max: int | None = None

    def _validate(self) -> None:
        if self.min is None and self.max is None:
            raise self._fail("give min, max or both")
        _check_count(self, "min", self.min)
        _check_count(self, "max", self.max)
        _check_order(self, self.min, self.max)


@dataclass(frozen=True)
class RowCount(Rule):
    """The batch has between ``min`` and ``max`` rows (inclusive)."""

    kind: ClassVar[str] = "row_count"
    level: ClassVar[RuleLevel] = "batch"
    min: int | None = None
    max: int | None = None

    def _validate(self) -> None:
        if self.min is None and self.max is None:
            raise self._fail("give min, max or both")
        _check_count(self, "min", self.min)
        _check_count(self, "max", self.max)
        _check_order(self, self.min, self.max)


@dataclass(frozen=True)
class Check(Rule):
    """Every row satisfies a SQL boolean ``expression`` over its columns, e.g.
    ``"amount >= 0 OR refunded"`` (DuckDB dialect). Like a SQL CHECK constraint, a row
    fails only when the expression is false; a NULL result passes."""

    kind: ClassVar[str] = "check"
    expression: str

    def _validate(self) -> None:
        if not isinstance(self.expression, str) or not self.expression.strip():
            raise self._fail("expression must be a non-empty SQL boolean expression")
        if ";" in self.expression:
            raise self._fail("expression must be one SQL expression, without ';'")

    def default_name(self) -> str:
        return f"check({' '.join(self.expression.split())})"


@dataclass(frozen=True)
class Distribution(Rule):
    """The values of ``column`` are distributed like a reference sample: population
    stability index <= ``max_psi`` and/or two-sample Kolmogorov-Smirnov statistic
    <= ``max_ks``. Numeric columns are cut into ``bins`` quantile bins of the reference
    for PSI; other columns compare category frequencies (KS needs numbers)."""

    kind: ClassVar[str] = "distribution"
    level: ClassVar[RuleLevel] = "batch"
    column: str
    max_psi: float | None = None
    max_ks: float | None = None
    bins: int = 10

    def _validate(self) -> None:
        if self.max_psi is None and self.max_ks is None:
            raise self._fail("give max_psi, max_ks or both")
        for label, v in (("max_psi", self.max_psi), ("max_ks", self.max_ks)):
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0
            ):
                raise self._fail(f"{label} must be a number >= 0, got {v!r}")
        if self.max_ks is not None and self.max_ks > 1:
            raise self._fail(f"max_ks must be at most 1, got {self.max_ks!r}")
        if isinstance(self.bins, bool) or not isinstance(self.bins, int) or self.bins < 2:
            raise self._fail(f"bins must be an integer >= 2, got {self.bins!r}")


@dataclass(frozen=True)
class Freshness(Rule):
    """SLO: the newest non-null ``column`` value is at most ``max_age`` older than the
    evaluation time (``now``). A batch with no such value fails."""

    kind: ClassVar[str] = "freshness"
    level: ClassVar[RuleLevel] = "batch"
    slo: ClassVar[bool] = True
    column: str
    max_age: timedelta

    def _validate(self) -> None:
        object.__setattr__(self, "max_age", _positive_duration(self, "max_age", self.max_age))


@dataclass(frozen=True)
class IngestionDelay(Rule):
    """SLO: for every row, ``created_column - event_column`` (how late the row reached
    the store) is at most ``max_delay``. Rows with either time null are not judged."""

    kind: ClassVar[str] = "ingestion_delay"
    level: ClassVar[RuleLevel] = "batch"
    slo: ClassVar[bool] = True
    event_column: str
    created_column: str
    max_delay: timedelta

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.event_column, self.created_column)

    def _validate(self) -> None:
        object.__setattr__(self, "max_delay", _positive_duration(self, "max_delay", self.max_delay))


@dataclass(frozen=True)
class ColumnType(Rule):
    """Implied by every declared `Column`: the column is present and its type converts to
    ``dtype`` without loss (``None``: any type)."""

    kind: ClassVar[str] = "type"
    level: ClassVar[RuleLevel] = "batch"
    column: str
    dtype: pa.DataType | None = None


def _positive_duration(rule: Rule, label: str, value: object) -> timedelta:
    try:
        td = parse_duration(value)  # type: ignore[arg-type]
    except DefinitionError as exc:
        raise rule._fail(str(exc)) from exc
    if td <= timedelta(0):
        raise rule._fail(f"{label} must be a positive duration, got {value!r}")
    return td


#: the rules a contract's ``rules`` (YAML ``quality``) may hold, by YAML kind
QUALITY_RULES: dict[str, type[Rule]] = {
    cls.kind: cls
    for cls in (
        NotNull,
        MaxNullFraction,
        Range,
        AllowedValues,
        Regex,
        Unique,
        Cardinality,
        RowCount,
        Check,
        Distribution,
    )
}
#: the rules a contract's ``slos`` (YAML ``slaProperties``) may hold
SLO_RULES: dict[str, type[Rule]] = {cls.kind: cls for cls in (Freshness, IngestionDelay)}


# -- the contract ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contract:
    """What a dataset (a feature group) promises: columns, quality rules and SLOs.

    ``key`` names the columns that identify a row (primary key plus event time); an empty
    `Unique()` checks it, and failing-row examples show it. Rules are kept in a canonical
    order -- single-column rules of declared columns in column order, then the others --
    each group in declaration order, so a contract reads back from YAML unchanged.
    """

    dataset: str
    columns: Sequence[Column | str] = ()
    rules: Sequence[Rule] = ()
    slos: Sequence[Rule] = ()
    key: Sequence[str] = ()
    owner: str = ""
    description: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("contract dataset", self.dataset)
        where = f"contract {self.dataset!r}"
        cols = tuple(c if isinstance(c, Column) else Column(c) for c in self.columns)
        names = [c.name for c in cols]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DefinitionError(f"{where}: column(s) declared twice: {dupes}")
        key = (self.key,) if isinstance(self.key, str) else tuple(self.key)
        for k in key:
            check_name("key column", k)
        if len(set(key)) != len(key):
            raise DefinitionError(f"{where}: key repeats a column: {list(key)}")
        rules, slos = tuple(self.rules), tuple(self.slos)
        for r in rules:
            if not isinstance(r, Rule) or r.kind not in QUALITY_RULES:
                hint = (
                    " (freshness and ingestion_delay go in slos)"
                    if isinstance(r, Rule) and r.slo
                    else ""
                )
                raise DefinitionError(
                    f"{where}: rules must be quality rules ({', '.join(QUALITY_RULES)}), "
                    f"got {r!r}{hint}"
                )
        for r in slos:
            if not isinstance(r, Rule) or r.kind not in SLO_RULES:
                raise DefinitionError(
                    f"{where}: slos must be {' or '.join(SLO_RULES)} rules, got {r!r}"
                )
        if names:
            unknown = [k for k in key if k not in names]
            if unknown:
                raise DefinitionError(
                    f"{where}: key column(s) {unknown} are not declared columns ({names})"
                )
            for r in (*rules, *slos):
                missing = [c for c in r.columns if c not in names]
                if missing:
                    raise DefinitionError(
                        f"{where}: rule {r.name!r} reads undeclared column(s) {missing}; "
                        f"declare them or fix the name (columns: {names})"
                    )
        for r in rules:
            if isinstance(r, Unique) and not r.columns and not key:
                raise DefinitionError(
                    f"{where}: rule {r.name!r} checks the key, but the contract has no key; "
                    "set key=[...] or name the columns: Unique(['a', 'b'])"
                )
            if (
                isinstance(r, NotNull)
                and r.column in names
                and not cols[names.index(r.column)].nullable
                and r.severity == "error"
            ):
                raise DefinitionError(
                    f"{where}: rule {r.name!r} repeats what nullable=False on column "
                    f"{r.column!r} already says; drop one of them"
                )
        position = {n: i for i, n in enumerate(names)}

        def order(rule: Rule) -> int:
            own = rule_column(rule)
            return position[own] if own in position else len(names)

        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "rules", tuple(sorted(rules, key=order)))
        object.__setattr__(self, "slos", slos)
        object.__setattr__(self, "tags", dict(self.tags))
        seen: dict[str, Rule] = {}
        for r in self.all_rules:
            if r.name in seen:
                raise DefinitionError(
                    f"{where}: two rules are named {r.name!r} ({seen[r.name]!r} and {r!r}); "
                    "give one of them name='...'"
                )
            seen[r.name] = r

    # -- lookups ------------------------------------------------------------------------------
    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)  # type: ignore[union-attr]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:  # type: ignore[union-attr]
                return c  # type: ignore[return-value]
        raise DefinitionError(f"contract {self.dataset!r} declares no column {name!r}")

    @property
    def implied_rules(self) -> tuple[Rule, ...]:
        """The rules the column declarations imply: ``type(c)`` and ``not_null(c)``."""
        out: list[Rule] = []
        for c in self.columns:
            assert isinstance(c, Column)
            out.append(ColumnType(c.name, c.dtype))
            if not c.nullable:
                out.append(NotNull(c.name))
        return tuple(out)

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        """Every rule evaluation checks, in report order: implied, quality rules, SLOs."""
        return (*self.implied_rules, *self.rules, *self.slos)

    def rule(self, name: str) -> Rule:
        for r in self.all_rules:
            if r.name == name:
                return r
        raise DefinitionError(f"contract {self.dataset!r} has no rule named {name!r}")

    # -- construction from a feature group ---------------------------------------------------
    @classmethod
    def from_feature_group(
        cls,
        group: FeatureGroup,
        *,
        rules: Sequence[Rule] = (),
        slos: Sequence[Rule] = (),
    ) -> Contract:
        """A contract whose columns, key and metadata come from ``group``'s definition:
        keys and event time are required, features nullable."""
        required = set(group.unique_key)
        columns = [
            Column(
                f.name,
                f.arrow_type,
                nullable=f.name not in required,
                description=f.description,
                classification=f.classification,
                tags=f.tags,
            )
            for f in group.columns
        ]
        return cls(
            dataset=group.name,
            columns=columns,
            rules=rules,
            slos=slos,
            key=group.unique_key,
            owner=group.owner,
            description=group.description,
        )


def rule_column(rule: Rule) -> str | None:
    """The one column a rule is about, if it has exactly one (it then sits under that
    column's ``quality`` in YAML)."""
    if isinstance(
        rule, NotNull | MaxNullFraction | Range | AllowedValues | Regex | Cardinality | Distribution
    ):
        return rule.column
    if isinstance(rule, Unique) and len(rule.columns) == 1:
        return rule.columns[0]
    return None
