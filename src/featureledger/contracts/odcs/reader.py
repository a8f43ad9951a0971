"""ODCS v3.0/v3.1 import: `from_odcs` maps what featureledger can enforce into a `Contract`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pyarrow as pa

from featureledger.contracts.odcs.common import RULE_PROPERTY, TAGS_PROPERTY, _load, rule_from_dict
from featureledger.definitions.contract import (
    AllowedValues,
    Check,
    Column,
    Contract,
    Freshness,
    IngestionDelay,
    MaxNullFraction,
    NotNull,
    Range,
    Regex,
    RowCount,
    Rule,
    Unique,
)
from featureledger.definitions.types import parse_type
from featureledger.errors import DefinitionError

# -- ODCS import -----------------------------------------------------------------------------------
_UNIT_SECONDS = {
    **dict.fromkeys(("y", "yr", "yrs", "year", "years"), 365 * 86400),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("ms", "millisecond", "milliseconds"), 0.001),
}
_CLASSIFICATIONS = {
    "public": "public",
    "internal": "internal",
    "pii": "pii",
    "sensitive": "sensitive",
    "restricted": "sensitive",
    "confidential": "sensitive",
    "secret": "sensitive",
}
_TYPES_BY_LOGICAL = {
    "integer": "int64",
    "number": "float64",
    "string": "string",
    "boolean": "bool",
    "date": "date",
    "timestamp": "timestamp",
}
_WARN = {"warn", "warning", "info", "low", "minor"}
_COUNT_SQL = re.compile(
    r"^\s*select\s+count\(\s*\*\s*\)\s+from\s+\$?\{object\}\s+where\s+(?P<cond>.+?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def from_odcs(source: str | Mapping[str, Any], *, strict: bool = True) -> Contract:
    """Read an ODCS v3.0/v3.1 document (YAML text or parsed) into a `Contract`.

    The first ``schema`` object is the dataset. Items exported by `to_odcs` come back
    exactly. Others are mapped when featureledger can enforce them (``required``,
    ``unique``, ``primaryKey``, ``logicalTypeOptions`` minimum/maximum/pattern, library
    metrics, ``SELECT COUNT(*) ... WHERE`` SQL with ``mustBe: 0``, ``freshness`` and
    ``latency`` SLAs); ``type: text`` items are documentation and are dropped. Anything
    else raises `DefinitionError` listing every such item, unless ``strict=False``, which
    drops them.
    """
    doc = _load(source) if isinstance(source, str) else source
    if not isinstance(doc, Mapping) or doc.get("kind", "DataContract") != "DataContract":
        raise DefinitionError("not an ODCS data contract (kind must be DataContract)")
    schema = doc.get("schema") or []
    if not schema:
        raise DefinitionError("ODCS contract has no schema object to read a dataset from")
    obj = schema[0]
    dataset = str(obj.get("name") or doc.get("name") or doc.get("id"))
    unsupported: list[str] = []
    where = f"ODCS schema object {dataset!r}"
    columns: list[Column] = []
    rules: list[Rule] = []
    key_pos: list[tuple[int, int, str]] = []
    for i, prop in enumerate(obj.get("properties") or []):
        name = prop.get("name")
        here = f"{where} property {name!r}"
        columns.append(
            Column(
                name,
                _odcs_type(prop),
                nullable=not prop.get("required", False),
                description=prop.get("description", "") or "",
                classification=_odcs_classification(prop.get("classification"), here, unsupported),
                tags=_odcs_tags(prop),
            )
        )
        if prop.get("primaryKey"):
            key_pos.append((prop.get("primaryKeyPosition") or 0, i, name))
        if prop.get("unique"):
            rules.append(Unique([name]))
        rules += _odcs_type_options(prop, name)
        for item in prop.get("quality") or []:
            rule = _odcs_rule(item, name, here, unsupported)
            if rule is not None:
                rules.append(rule)
    for item in obj.get("quality") or []:
        rule = _odcs_rule(item, None, where, unsupported)
        if rule is not None:
            rules.append(rule)
    slos = []
    for item in doc.get("slaProperties") or []:
        slo = _odcs_slo(item, dataset, unsupported)
        if slo is not None:
            slos.append(slo)
    if unsupported and strict:
        listed = "\n  - ".join(unsupported)
        raise DefinitionError(
            f"ODCS contract {dataset!r}: featureledger cannot enforce these items:\n  - {listed}"
            "\nRewrite them as featureledger rules, or import with strict=False to drop them."
        )
    key = [name for _, _, name in sorted(key_pos)]
    for extra in obj.get("customProperties") or []:
        if isinstance(extra, Mapping) and extra.get("property") == "featureledgerKey":
            key = list(extra["value"])
    description = doc.get("description")
    if isinstance(description, Mapping):
        description = description.get("purpose")
    return Contract(
        dataset=dataset,
        columns=columns,
        rules=_dedupe(rules),
        slos=slos,
        key=key,
        owner=_odcs_owner(doc),
        description=description or obj.get("description") or "",
        tags=_odcs_tags(doc),
    )


def _dedupe(rules: list[Rule]) -> list[Rule]:
    seen: dict[str, Rule] = {}
    for r in rules:
        seen.setdefault(r.name, r)  # ``unique: true`` and a duplicateValues item say one thing
    return list(seen.values())


def _custom(item: Mapping[str, Any], key: str) -> Any:
    for extra in item.get("customProperties") or []:
        if isinstance(extra, Mapping) and extra.get("property") == key:
            return extra.get("value")
    return None


def _odcs_type(prop: Mapping[str, Any]) -> pa.DataType | None:
    physical = prop.get("physicalType")
    if isinstance(physical, str):
        try:
            return parse_type(physical)
        except DefinitionError:
            pass
    logical = _TYPES_BY_LOGICAL.get(str(prop.get("logicalType", "")).lower())
    return parse_type(logical) if logical else None


def _odcs_classification(value: Any, where: str, unsupported: list[str]) -> Any:
    if value is None:
        return "internal"
    mapped = _CLASSIFICATIONS.get(str(value).lower())
    if mapped is None:
        unsupported.append(
            f"{where}: classification {value!r} (featureledger knows "
            f"{sorted(set(_CLASSIFICATIONS))})"
        )
        return "internal"
    return mapped


def _odcs_tags(item: Mapping[str, Any]) -> dict[str, str]:
    exact = _custom(item, TAGS_PROPERTY)
    if isinstance(exact, Mapping):
        return {str(k): str(v) for k, v in exact.items()}
    tags = item.get("tags") or []
    if isinstance(tags, Mapping):
        return {str(k): str(v) for k, v in tags.items()}
    pairs = (str(t).partition(":") for t in tags)
    return {k: v for k, _, v in pairs}


def _odcs_owner(doc: Mapping[str, Any]) -> str:
    team = doc.get("team")
    if isinstance(team, Mapping):
        return str(team.get("name") or "")
    if isinstance(team, list):  # the deprecated list form: the member whose role is owner
        for member in team:
            if isinstance(member, Mapping) and str(member.get("role", "")).lower() == "owner":
                return str(member.get("username") or member.get("name") or "")
    return str(doc.get("owner") or "")


def _odcs_type_options(prop: Mapping[str, Any], name: str) -> list[Rule]:
    options = prop.get("logicalTypeOptions") or {}
    out: list[Rule] = []
    if options.get("minimum") is not None or options.get("maximum") is not None:
        out.append(Range(name, options.get("minimum"), options.get("maximum")))
    if options.get("pattern"):
        out.append(Regex(name, options["pattern"]))
    return out


def _severity(item: Mapping[str, Any]) -> str:
    return "warn" if str(item.get("severity", "error")).lower() in _WARN else "error"


def _odcs_rule(
    item: Mapping[str, Any], column: str | None, where: str, unsupported: list[str]
) -> Rule | None:
    exact = _custom(item, RULE_PROPERTY)
    if isinstance(exact, Mapping):
        return rule_from_dict(exact, column=column, where=where)
    kind = item.get("type") or ("library" if item.get("metric") or item.get("rule") else "text")
    common: dict[str, Any] = {"severity": _severity(item)}
    if item.get("name"):
        common["name"] = str(item["name"])
    try:
        if kind == "text":
            return None
        if kind == "custom" and item.get("engine") == "featureledger":
            data = _load(item.get("implementation") or "")
            return rule_from_dict(data, column=column, where=where)
        if kind == "library":
            rule = _odcs_library(item, column, common)
            if rule is not None:
                return rule
        if kind == "sql" and item.get("mustBe") == 0:
            match = _COUNT_SQL.match(str(item.get("query", "")))
            if match:
                cond = (
                    match.group("cond")
                    .replace("${property}", column or "")
                    .replace("{property}", column or "")
                )
                inner = re.fullmatch(r"\s*not\s*\((?P<e>.*)\)\s*", cond, re.I | re.S)
                expr = inner.group("e") if inner else f"NOT ({cond})"
                return Check(expr, **common)
    except (DefinitionError, TypeError, ValueError) as exc:
        unsupported.append(f"{where}: quality item {dict(item)!r}: {exc}")
        return None
    unsupported.append(f"{where}: quality item {dict(item)!r}")
    return None


def _odcs_library(
    item: Mapping[str, Any], column: str | None, common: dict[str, Any]
) -> Rule | None:
    metric = str(item.get("metric") or item.get("rule") or "")
    args = item.get("arguments") or {}
    zero = item.get("mustBe") == 0
    percent = str(item.get("unit", "rows")).lower() == "percent"
    if metric in ("nullValues", "nullCheck", "notNull") and column:
        if zero or (metric in ("nullCheck", "notNull") and "mustBe" not in item):
            return NotNull(column, **common)
        limit = item.get("mustBeLessOrEqualTo")
        if percent and limit is not None:
            return MaxNullFraction(column, limit / 100, **common)
        if percent and item.get("mustBeLessThan") is not None:
            return None  # strict "<" on a fraction cannot be written with an inclusive bound
    if metric in ("invalidValues", "validValues") and column and (zero or "mustBe" not in item):
        values = args.get("validValues") or item.get("validValues")
        if values:
            return AllowedValues(column, values, **common)
        if args.get("pattern"):
            return Regex(column, args["pattern"], **common)
    if metric in ("duplicateValues", "duplicateCount") and zero:
        cols = args.get("properties") or ([column] if column else [])
        return Unique(cols, **common) if cols else None
    if metric == "rowCount":
        low, high = _bounds_of(item)
        if low is not None or high is not None:
            return RowCount(low, high, **common)
    return None


def _bounds_of(item: Mapping[str, Any]) -> tuple[int | None, int | None]:
    low = high = None
    if "mustBeBetween" in item:
        low, high = item["mustBeBetween"]
    if "mustBeGreaterOrEqualTo" in item:
        low = item["mustBeGreaterOrEqualTo"]
    if "mustBeGreaterThan" in item:
        low = int(item["mustBeGreaterThan"]) + 1
    if "mustBeLessOrEqualTo" in item:
        high = item["mustBeLessOrEqualTo"]
    if "mustBeLessThan" in item:
        high = int(item["mustBeLessThan"]) - 1
    if "mustBe" in item:
        low = high = item["mustBe"]
    return low, high


def _odcs_slo(item: Mapping[str, Any], dataset: str, unsupported: list[str]) -> Rule | None:
    exact = _custom(item, RULE_PROPERTY)
    if isinstance(exact, Mapping):
        return rule_from_dict(exact, slo=True, where=f"ODCS slaProperties of {dataset!r}")
    prop = str(item.get("property", "")).lower()
    elements = [
        e.strip().split(".")[-1] for e in str(item.get("element") or "").split(",") if e.strip()
    ]
    try:
        if prop in ("freshness", "latency", "ly") and item.get("value") is not None:
            seconds = _UNIT_SECONDS.get(str(item.get("unit", "s")).lower())
            if seconds is None:
                raise DefinitionError(f"unknown unit {item.get('unit')!r}")
            limit = timedelta(seconds=float(item["value"]) * seconds)
            if prop == "freshness" and len(elements) == 1:
                return Freshness(elements[0], limit)
            if prop != "freshness" and len(elements) == 2:
                return IngestionDelay(elements[0], elements[1], limit)
    except (DefinitionError, TypeError, ValueError) as exc:
        unsupported.append(f"slaProperties item {dict(item)!r}: {exc}")
        return None
    if prop in (
        "generalavailability",
        "endofsupport",
        "endoflife",
        "retention",
        "frequency",
        "timeofavailability",
        "availability",
        "ga",
        "es",
        "el",
        "re",
        "fy",
    ):
        return None  # service facts with nothing to check in a batch
    unsupported.append(f"slaProperties item {dict(item)!r}")
    return None
