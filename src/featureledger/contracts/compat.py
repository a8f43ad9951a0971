"""Classify a contract change as breaking (major) or not, with the reasons.

A change is breaking when data that passed the old contract can fail the new one, or a
reader loses something it relied on: a removed column, a narrower type, a tightened
error rule, a removed allowed value, a new error-severity rule. Loosening is minor and
documentation is a patch. Rules are matched by name; docs/contracts.md has the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

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
    Range,
    Regex,
    RowCount,
    Rule,
    Unique,
    format_duration,
)
from featureledger.definitions.types import is_widening, type_name
from featureledger.versioning.compat import Change, Level

Direction = Literal["tightened", "loosened", "changed"]


def classify_contract_change(old: Contract, new: Contract) -> Change:
    """Compare two versions of one contract; ``Change.level`` is ``"major"`` when the change
    is breaking, and every reason names what changed and in which direction."""
    change = Change()
    if old.dataset != new.dataset:
        change.note("major", f"dataset changed from {old.dataset!r} to {new.dataset!r}")
    if tuple(old.key) != tuple(new.key):
        change.note("major", f"key changed from {list(old.key)} to {list(new.key)}")
    _columns(old, new, change)
    _rules(old, new, change)
    for attr in ("owner", "description", "tags"):
        if getattr(old, attr) != getattr(new, attr):
            change.note("patch", f"{attr} changed")
    return change


# -- columns --------------------------------------------------------------------------------------
def _columns(old: Contract, new: Contract, change: Change) -> None:
    before = {c.name: c for c in old.columns}  # type: ignore[union-attr]
    after = {c.name: c for c in new.columns}  # type: ignore[union-attr]
    for name, a in before.items():
        if name not in after:
            change.note("major", f"column {name!r} removed (or renamed)")
            continue
        b = after[name]
        assert isinstance(a, Column) and isinstance(b, Column)
        _column_type(name, a, b, change)
        if a.nullable and not b.nullable:
            change.note("major", f"column {name!r} became required (not null)")
        elif not a.nullable and b.nullable:
            change.note("minor", f"column {name!r} became nullable")
        if a.classification != b.classification:
            change.note(
                "minor",
                f"column {name!r} classification changed from "
                f"{a.classification} to {b.classification}",
            )
        for attr in ("description", "tags"):
            if getattr(a, attr) != getattr(b, attr):
                change.note("patch", f"column {name!r} {attr} changed")
    for name, b in after.items():
        if name in before:
            continue
        assert isinstance(b, Column)
        if b.nullable:
            change.note("minor", f"nullable column {name!r} added")
            change.added.append(name)
        else:
            change.note(
                "major", f"required column {name!r} added; existing data has no values for it"
            )
    if [n for n in before if n in after] != [n for n in after if n in before]:
        change.note("patch", "column order changed")


def _column_type(name: str, a: Column, b: Column, change: Change) -> None:
    if a.dtype == b.dtype:
        return
    if b.dtype is None:
        change.note("minor", f"column {name!r} no longer constrains its type (was {a.type_name})")
    elif a.dtype is None:
        change.note("major", f"column {name!r} now must be {b.type_name} (was any type)")
    elif is_widening(a.dtype, b.dtype):
        change.note("minor", f"column {name!r} widened from {a.type_name} to {b.type_name}")
        change.widened[name] = type_name(b.dtype)
    else:
        change.note(
            "major", f"column {name!r} narrowed or retyped from {a.type_name} to {b.type_name}"
        )


# -- rules ----------------------------------------------------------------------------------------
def _rules(old: Contract, new: Contract, change: Change) -> None:
    before = {r.name: r for r in (*old.rules, *old.slos)}
    after = {r.name: r for r in (*new.rules, *new.slos)}
    for name, a in before.items():
        if name not in after:
            change.note("minor", f"rule {name!r} removed (loosened)")
            continue
        b = after[name]
        if a.kind != b.kind:
            change.note(
                "major" if b.severity == "error" else "minor",
                f"rule {name!r} changed from {a.kind} to {b.kind}",
            )
            continue
        if a.severity == "warn" and b.severity == "error":
            change.note("major", f"rule {name!r} severity raised from warn to error")
        elif a.severity == "error" and b.severity == "warn":
            change.note("minor", f"rule {name!r} severity lowered from error to warn")
        for direction, what in _compare(a, b, old, new):
            level: Level = "minor" if direction == "loosened" or b.severity == "warn" else "major"
            change.note(level, f"rule {name!r}: {what} ({direction})")
    for name, b in after.items():
        if name not in before:
            if b.severity == "error":
                change.note("major", f"new error rule {name!r}; existing data may fail it")
            else:
                change.note("minor", f"new warn rule {name!r}")


def _compare(a: Rule, b: Rule, old: Contract, new: Contract) -> list[tuple[Direction, str]]:
    """How rule ``b`` differs from ``a`` (same kind): each difference and its direction."""
    out: list[tuple[Direction, str]] = []
    if not isinstance(a, Unique) and a.columns != b.columns:
        out.append(("changed", f"columns changed from {list(a.columns)} to {list(b.columns)}"))
    if isinstance(a, Range | Cardinality | RowCount):
        assert isinstance(b, Range | Cardinality | RowCount)
        _lower(out, "min", a.min, b.min)
        _upper(out, "max", a.max, b.max)
    elif isinstance(a, MaxNullFraction):
        _upper(out, "max_fraction", a.max_fraction, b.max_fraction)  # type: ignore[attr-defined]
    elif isinstance(a, AllowedValues):
        assert isinstance(b, AllowedValues)
        removed = [v for v in a.values if v not in b.values]
        added = [v for v in b.values if v not in a.values]
        if removed:
            out.append(("tightened", f"allowed value(s) {removed} removed"))
        if added:
            out.append(("loosened", f"allowed value(s) {added} added"))
    elif isinstance(a, Regex):
        if a.pattern != b.pattern:  # type: ignore[attr-defined]
            out.append(("changed", f"pattern changed from {a.pattern!r} to {b.pattern!r}"))  # type: ignore[attr-defined]
    elif isinstance(a, Unique):
        cols_a = set(a.columns or old.key)
        cols_b = set(b.columns or new.key)
        shown = f"from {sorted(cols_a)} to {sorted(cols_b)}"
        if cols_b < cols_a:
            out.append(("tightened", f"unique on fewer columns, {shown}"))
        elif cols_b > cols_a:
            out.append(("loosened", f"unique on more columns, {shown}"))
        elif cols_a != cols_b:
            out.append(("changed", f"unique columns changed {shown}"))
    elif isinstance(a, Check):
        if " ".join(a.expression.split()) != " ".join(b.expression.split()):  # type: ignore[attr-defined]
            out.append(("changed", "expression changed"))
    elif isinstance(a, Distribution):
        assert isinstance(b, Distribution)
        _upper(out, "max_psi", a.max_psi, b.max_psi)
        _upper(out, "max_ks", a.max_ks, b.max_ks)
        if a.bins != b.bins:
            out.append(("changed", f"bins changed from {a.bins} to {b.bins}"))
    elif isinstance(a, Freshness):
        _upper(out, "max_age", a.max_age, b.max_age, format_duration)  # type: ignore[attr-defined]
    elif isinstance(a, IngestionDelay):
        _upper(
            out,
            "max_delay",
            a.max_delay,
            b.max_delay,  # type: ignore[attr-defined]
            format_duration,
        )
    return out


def _lower(
    out: list[tuple[Direction, str]], label: str, a: Any, b: Any, show: Callable[[Any], str] = repr
) -> None:
    """A lower bound: raising it tightens."""
    _bound(out, label, a, b, show, higher_is_tighter=True)


def _upper(
    out: list[tuple[Direction, str]], label: str, a: Any, b: Any, show: Callable[[Any], str] = repr
) -> None:
    """An upper bound: lowering it tightens."""
    _bound(out, label, a, b, show, higher_is_tighter=False)


def _bound(
    out: list[tuple[Direction, str]],
    label: str,
    a: Any,
    b: Any,
    show: Callable[[Any], str],
    *,
    higher_is_tighter: bool,
) -> None:
    if a == b and type(a) is type(b):
        return
    if a is None:
        out.append(("tightened", f"{label} {show(b)} added"))
        return
    if b is None:
        out.append(("loosened", f"{label} {show(a)} dropped"))
        return
    try:
        raised = b > a
        lowered = b < a
    except TypeError:
        out.append(("changed", f"{label} changed from {show(a)} to {show(b)}"))
        return
    if not raised and not lowered:
        return  # equal values of different numeric types (1 vs 1.0)
    verb = "raised" if raised else "lowered"
    tighter = raised == higher_is_tighter
    out.append(
        ("tightened" if tighter else "loosened", f"{label} {verb} from {show(a)} to {show(b)}")
    )
