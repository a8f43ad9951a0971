"""ODCS v3.0/v3.1 import: `from_odcs` maps what featureledger can enforce into a `Contract`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyarrow as pa

from featureledger.contracts.odcs.common import (
    RULE_PROPERTY,
    SLOS_PROPERTY,
    TAGS_PROPERTY,
    _load,
    rule_from_dict,
)
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
from featureledger.definitions.names import check_name
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
    r"^\s*select\s+count\(\s*\*\s*\)\s+from\s+\$?(?P<table>\{object\}|[\w.]+)\s+where\s+"
    r"(?P<cond>.+?)\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class OdcsImport:
    """What `import_odcs` read: the contract and, when lenient, each item it dropped and why."""

    contract: Contract
    dropped: tuple[str, ...] = ()


def from_odcs(
    source: str | Mapping[str, Any], *, lenient: bool = False, object: str | None = None
) -> Contract:
    """Read an ODCS v3.0/v3.1 document (YAML text or parsed) into a `Contract`.

    Items exported by `to_odcs` come back exactly. Others are mapped when featureledger
    can enforce them (``required``, ``unique``, ``primaryKey``, ``logicalTypeOptions``
    minimum/maximum/pattern, library metrics, ``SELECT COUNT(*) ... WHERE`` SQL with
    ``mustBe: 0``, ``freshness`` and two-column ``latency`` SLAs); ``type: text`` items and
    service facts (availability dates, retention, frequency) are documentation and are
    not kept. Anything else raises `DefinitionError` naming every such item and why,
    unless ``lenient=True``, which drops them (`import_odcs` also lists them).
    ``object`` picks the schema object when the document holds several.
    """
    return import_odcs(source, lenient=lenient, object=object).contract


def import_odcs(
    source: str | Mapping[str, Any], *, lenient: bool = False, object: str | None = None
) -> OdcsImport:
    """`from_odcs` that also returns what a lenient import dropped."""
    doc = _load(source) if isinstance(source, str) else source
    if not isinstance(doc, Mapping) or doc.get("kind", "DataContract") != "DataContract":
        raise DefinitionError("not an ODCS data contract (kind must be DataContract)")
    unsupported: list[str] = []
    obj = _pick_object(doc, object, unsupported)
    dataset = str(obj.get("name") or doc.get("name") or doc.get("id") or "")
    if not obj:
        dataset = _dataset_name(doc)
    where = f"ODCS schema object {dataset!r}"
    columns: list[Column] = []
    rules: list[Rule] = []
    key_pos: list[tuple[int, int, str]] = []
    tables = {str(t) for t in (obj.get("name"), obj.get("physicalName"), dataset) if t}
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
            rule = _odcs_rule(item, name, here, unsupported, tables)
            if rule is not None:
                rules.append(rule)
        if prop.get("relationships"):
            unsupported.append(
                f"{here}: relationships {_brief(prop['relationships'])}: featureledger does not "
                "check foreign keys between datasets"
            )
    for item in obj.get("quality") or []:
        rule = _odcs_rule(item, None, where, unsupported, tables)
        if rule is not None:
            rules.append(rule)
    if obj.get("relationships"):
        unsupported.append(
            f"{where}: relationships {_brief(obj['relationships'])}: featureledger does not "
            "check foreign keys between datasets"
        )
    declared = {c.name for c in columns}
    exact_slos = _custom(doc, SLOS_PROPERTY)
    slos = []
    for item in doc.get("slaProperties") or []:
        slo = _odcs_slo(item, dataset, declared, unsupported, exact_slos)
        if slo is not None:
            slos.append(slo)
    if unsupported and not lenient:
        listed = "\n  - ".join(unsupported)
        raise DefinitionError(
            f"ODCS contract {dataset!r}: featureledger cannot enforce these items:\n  - {listed}"
            "\nRewrite them as featureledger rules, or import with lenient=True (CLI: "
            "`featureledger contract import --lenient`) to drop them and list what was dropped."
        )
    key = [name for _, _, name in sorted(key_pos)]
    for extra in obj.get("customProperties") or []:
        if isinstance(extra, Mapping) and extra.get("property") == "featureledgerKey":
            key = list(extra["value"])
    description = doc.get("description")
    if isinstance(description, Mapping):
        description = description.get("purpose")
    contract = Contract(
        dataset=dataset,
        columns=columns,
        rules=_dedupe(rules),
        slos=slos,
        key=key,
        owner=_odcs_owner(doc),
        description=description or obj.get("description") or "",
        tags=_odcs_tags(doc),
    )
    return OdcsImport(contract, tuple(unsupported))


def _brief(value: Any, limit: int = 160) -> str:
    text = repr(dict(value)) if isinstance(value, Mapping) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pick_object(
    doc: Mapping[str, Any], wanted: str | None, unsupported: list[str]
) -> Mapping[str, Any]:
    """The schema object that is the dataset; ``{}`` for a contract with no schema objects."""
    schema = [o for o in doc.get("schema") or [] if isinstance(o, Mapping)]
    names = [str(o.get("name")) for o in schema]
    if wanted is not None:
        if wanted not in names:
            raise DefinitionError(
                f"ODCS contract has no schema object {wanted!r}; it holds {names or 'none'}"
            )
        return schema[names.index(wanted)]
    if len(schema) > 1:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        unsupported.append(
            f"schema holds {len(schema)} objects ({shown}): a featureledger contract describes "
            f"one dataset; import each with object=NAME (CLI: --object NAME); "
            f"kept the first, {names[0]!r}"
        )
    return schema[0] if schema else {}


def _dataset_name(doc: Mapping[str, Any]) -> str:
    """A contract with no schema objects (only SLAs, roles, servers) names the dataset itself."""
    for candidate in (doc.get("name"), doc.get("id")):
        try:
            return check_name("contract dataset", candidate)
        except DefinitionError:
            continue
    raise DefinitionError(
        "ODCS contract has no schema object, and neither its name "
        f"{doc.get('name')!r} nor its id {doc.get('id')!r} is a dataset name; add a schema "
        "object naming the dataset"
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
    item: Mapping[str, Any],
    column: str | None,
    where: str,
    unsupported: list[str],
    tables: set[str],
) -> Rule | None:
    exact = _custom(item, RULE_PROPERTY)
    if isinstance(exact, Mapping):
        return rule_from_dict(exact, column=column, where=where)
    kind = item.get("type") or ("library" if item.get("metric") or item.get("rule") else "text")
    common: dict[str, Any] = {"severity": _severity(item)}
    if item.get("name"):
        common["name"] = str(item["name"])
    reason = f"type {kind!r} is not one featureledger reads (text, library, sql, custom)"
    try:
        if kind == "text":
            return None
        if kind == "custom":
            if item.get("engine") == "featureledger":
                data = _load(item.get("implementation") or "")
                return rule_from_dict(data, column=column, where=where)
            reason = (
                f"a custom check for engine {item.get('engine')!r}: featureledger runs only "
                "its own rules (engine: featureledger)"
            )
        if kind == "library":
            rule, reason = _odcs_library(item, column, common)
            if rule is not None:
                return rule
        if kind == "sql":
            rule, reason = _odcs_sql(item, column, common, tables)
            if rule is not None:
                return rule
    except (DefinitionError, TypeError, ValueError) as exc:
        reason = str(exc)
    unsupported.append(f"{where}: quality item {_brief(item)}: {reason}")
    return None


def _odcs_sql(
    item: Mapping[str, Any], column: str | None, common: dict[str, Any], tables: set[str]
) -> tuple[Rule | None, str]:
    if item.get("mustBe") != 0:
        return None, (
            "featureledger reads SQL checks only as SELECT COUNT(*) ... WHERE <bad rows> "
            "with mustBe: 0"
        )
    query = str(item.get("query", ""))
    match = _COUNT_SQL.match(query)
    if not match or match.group("table") not in {"{object}", *tables}:
        names = ", ".join(sorted(tables))
        return None, (
            "featureledger reads SQL checks only as SELECT COUNT(*) FROM {object} (or this "
            f"object's own name: {names}) WHERE <bad rows>, with mustBe: 0"
        )
    cond = match.group("cond")
    for placeholder in ("${property}", "{property}"):
        cond = cond.replace(placeholder, column or "")
    inner = re.fullmatch(r"\s*not\s*\((?P<e>.*)\)\s*", cond, re.I | re.S)
    expr = inner.group("e") if inner else f"NOT ({cond})"
    return Check(expr, **common), ""


def _odcs_library(
    item: Mapping[str, Any], column: str | None, common: dict[str, Any]
) -> tuple[Rule | None, str]:
    metric = str(item.get("metric") or item.get("rule") or "")
    args = item.get("arguments") or {}
    zero = item.get("mustBe") == 0
    operators = [k for k in item if str(k).startswith("must")]
    percent = str(item.get("unit", "rows")).lower() == "percent"
    if metric in ("nullValues", "nullCheck", "notNull"):
        if not column:
            return None, f"metric {metric!r} needs a column; put it under a property"
        if zero or (metric in ("nullCheck", "notNull") and not operators):
            return NotNull(column, **common), ""
        limit = item.get("mustBeLessOrEqualTo")
        if percent and limit is not None:
            return MaxNullFraction(column, limit / 100, **common), ""
        return None, (
            "featureledger bounds nulls as mustBe: 0 or, with unit: percent, "
            "mustBeLessOrEqualTo (max_null_fraction is an inclusive bound)"
        )
    if metric in ("invalidValues", "validValues"):
        if not column:
            return None, f"metric {metric!r} needs a column; put it under a property"
        if not (zero or not operators):
            return None, (
                f"a tolerance ({', '.join(f'{k}: {item[k]}' for k in operators)}"
                f"{' percent' if percent else ''}): featureledger's allowed_values and "
                "regex admit no invalid row (mustBe: 0)"
            )
        values = args.get("validValues") or item.get("validValues")
        if values:
            # null in the list says nulls are valid: allowed_values always passes nulls
            kept = [v for v in values if v is not None]
            if kept:
                return AllowedValues(column, kept, **common), ""
            return None, "validValues lists only null"
        if args.get("pattern"):
            return Regex(column, args["pattern"], **common), ""
        return None, "invalidValues needs arguments.validValues or arguments.pattern"
    if metric in ("duplicateValues", "duplicateCount"):
        cols = args.get("properties") or ([column] if column else [])
        if zero and cols:
            return Unique(cols, **common), ""
        return None, (
            "featureledger checks duplicates as mustBe: 0 over a property or arguments.properties"
        )
    if metric == "rowCount":
        low, high = _bounds_of(item)
        if low is not None or high is not None:
            return RowCount(low, high, **common), ""
        return None, "rowCount needs mustBe, mustBeBetween or a greater/less-than bound"
    return None, (
        f"metric {metric!r}: featureledger reads nullValues, invalidValues, duplicateValues "
        "and rowCount"
    )


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


_SERVICE_FACTS = {
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
}


def _odcs_slo(
    item: Mapping[str, Any],
    dataset: str,
    declared: set[str],
    unsupported: list[str],
    exact_slos: Any,
) -> Rule | None:
    where = f"ODCS slaProperties of {dataset!r}"
    if isinstance(exact_slos, Mapping) and isinstance(exact_slos.get(item.get("id")), Mapping):
        return rule_from_dict(exact_slos[item["id"]], slo=True, where=where)
    prop = str(item.get("property", "")).lower()
    if prop in _SERVICE_FACTS:
        return None  # service facts with nothing to check in a batch
    elements = [
        e.strip().split(".")[-1] for e in str(item.get("element") or "").split(",") if e.strip()
    ]
    reason = (
        f"property {item.get('property')!r}: featureledger checks freshness and latency "
        "(ingestion delay)"
    )
    try:
        if prop in ("freshness", "latency", "ly"):
            reason = _slo_shape(item, prop, elements, declared)
        if not reason:
            seconds = _UNIT_SECONDS[str(item.get("unit", "s")).lower()]
            limit = timedelta(seconds=float(item["value"]) * seconds)
            if prop == "freshness":
                return Freshness(elements[0], limit)
            return IngestionDelay(elements[0], elements[1], limit)
    except (DefinitionError, TypeError, ValueError) as exc:
        reason = str(exc)
    unsupported.append(f"slaProperties item {_brief(item)}: {reason}")
    return None


def _slo_shape(item: Mapping[str, Any], prop: str, elements: list[str], declared: set[str]) -> str:
    """Why the freshness/latency item cannot be read, or ``""`` when it can."""
    if item.get("value") is None:
        return "it has no value"
    if str(item.get("unit", "s")).lower() not in _UNIT_SECONDS:
        return f"unknown unit {item.get('unit')!r}; use d, h, min, s or ms"
    undeclared = [e for e in elements if declared and e not in declared]
    if undeclared:
        return f"element(s) {undeclared} are not properties of this schema object"
    if prop == "freshness" and len(elements) != 1:
        return "freshness needs exactly one element: the event-time column"
    if prop != "freshness" and len(elements) != 2:
        return (
            f"latency names {len(elements)} element(s); featureledger measures it as the "
            "delay from an event-time column to a created-time column, so name both "
            "(element: 'obj.event_time,obj.created_at'), or use freshness for the age of "
            "the newest row"
        )
    return ""
