"""Contracts as YAML: featureledger's own form and Open Data Contract Standard (ODCS) v3.

featureledger's form (``apiVersion: featureledger/v1``) keeps the ODCS skeleton -- one
``schema`` object whose ``properties`` are the columns, quality rules under the column they
check or under the object, SLOs under ``slaProperties`` -- and writes rules in its own
compact vocabulary (``rule: range``, ``min: 0``), so a file reads back to an equal
`Contract`. docs/contracts.md documents it.

`to_odcs` writes strict ODCS v3.1.0 for other tools (datacontract-cli and friends): each
rule in ODCS terms where ODCS has them (library metrics ``nullValues``, ``invalidValues``,
``duplicateValues``, ``rowCount``; ``type: sql`` queries; SLA properties ``freshness`` and
``latency``) or as ``type: custom, engine: featureledger``, and every item also carries
its exact featureledger form in ``customProperties`` so `from_odcs` restores it unchanged.
`from_odcs` also reads hand-written ODCS v3.0/v3.1 documents, mapping what it can enforce.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from featureledger.definitions.contract import (
    QUALITY_RULES,
    SLO_RULES,
    AllowedValues,
    Cardinality,
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
    format_duration,
    rule_column,
)
from featureledger.definitions.types import parse_type
from featureledger.errors import DefinitionError

API_VERSION = "featureledger/v1"
ODCS_API_VERSION = "v3.1.0"
#: customProperties keys that carry featureledger's exact forms through ODCS
RULE_PROPERTY = "featureledgerRule"
TAGS_PROPERTY = "featureledgerTags"
_COMMON_KEYS = ("rule", "severity", "name")


# -- rules <-> dicts (shared by both forms) --------------------------------------------------------
def rule_to_dict(rule: Rule, *, under_column: bool = False) -> dict[str, Any]:
    """``{"rule": kind, <parameters that differ from their defaults>, severity, name}``;
    ``under_column`` leaves out the column a column-level rule sits under."""
    out: dict[str, Any] = {"rule": rule.kind}
    defaults = {f.name: f.default for f in fields(rule)}
    for key, value in rule.params().items():
        if under_column and key in ("column", "columns"):
            continue
        if value == defaults.get(key) and type(value) is type(defaults.get(key)):
            continue
        out[key] = _plain(value)
    if rule.severity != "error":
        out["severity"] = rule.severity
    if rule.name != rule.default_name():
        out["name"] = rule.name
    return out


def rule_from_dict(
    data: Mapping[str, Any],
    *,
    column: str | None = None,
    slo: bool = False,
    where: str = "contract",
) -> Rule:
    """The inverse of `rule_to_dict`; ``column`` fills in the column of a nested rule."""
    if not isinstance(data, Mapping) or "rule" not in data:
        raise DefinitionError(f"{where}: each rule needs a 'rule:' kind, got {data!r}")
    kinds = SLO_RULES if slo else QUALITY_RULES
    cls = kinds.get(data["rule"])
    if cls is None:
        section = "slaProperties" if slo else "quality"
        raise DefinitionError(
            f"{where}: unknown {section} rule {data['rule']!r}; use one of {', '.join(kinds)}"
        )
    params = [f.name for f in fields(cls) if f.name not in _COMMON_KEYS]
    unknown = [k for k in data if k not in params and k not in _COMMON_KEYS]
    if unknown:
        raise DefinitionError(
            f"{where}: rule {data['rule']!r} has no setting(s) {unknown}; it takes "
            f"{[*params, 'severity', 'name']}"
        )
    kwargs = {k: v for k, v in data.items() if k != "rule"}
    if column is not None:
        if cls is Unique:
            kwargs.setdefault("columns", [column])
        elif "column" in params:
            kwargs.setdefault("column", column)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise DefinitionError(f"{where}: rule {data['rule']!r}: {exc}") from exc


def _plain(value: Any) -> Any:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


# -- featureledger's own form ----------------------------------------------------------------------
def contract_to_dict(contract: Contract) -> dict[str, Any]:
    """The featureledger YAML document as plain data (dates stay `date`/`datetime`)."""
    declared = set(contract.column_names)
    by_column: dict[str, list[dict[str, Any]]] = {}
    table_rules = []
    for r in contract.rules:
        own = rule_column(r)
        if own in declared:
            by_column.setdefault(own, []).append(rule_to_dict(r, under_column=True))
        else:
            table_rules.append(rule_to_dict(r))
    properties = []
    for c in contract.columns:
        assert isinstance(c, Column)
        prop: dict[str, Any] = {"name": c.name}
        if c.dtype is not None:
            prop["physicalType"] = c.type_name
            prop["logicalType"] = _logical_type(c.dtype)
        if not c.nullable:
            prop["required"] = True
        if c.description:
            prop["description"] = c.description
        if c.classification != "internal":
            prop["classification"] = c.classification
        if c.tags:
            prop["tags"] = dict(c.tags)
        if c.name in by_column:
            prop["quality"] = by_column[c.name]
        properties.append(prop)
    obj: dict[str, Any] = {"name": contract.dataset}
    if contract.key:
        obj["key"] = list(contract.key)
    obj["properties"] = properties
    if table_rules:
        obj["quality"] = table_rules
    doc: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "dataset": contract.dataset,
    }
    if contract.owner:
        doc["owner"] = contract.owner
    if contract.description:
        doc["description"] = contract.description
    if contract.tags:
        doc["tags"] = dict(contract.tags)
    doc["schema"] = [obj]
    if contract.slos:
        doc["slaProperties"] = [rule_to_dict(r) for r in contract.slos]
    return doc


def contract_from_dict(doc: Mapping[str, Any]) -> Contract:
    """The inverse of `contract_to_dict`."""
    if not isinstance(doc, Mapping):
        raise DefinitionError(f"a contract must be a mapping, got {type(doc).__name__}")
    if doc.get("apiVersion") != API_VERSION:
        raise DefinitionError(
            f"not a featureledger contract: apiVersion is {doc.get('apiVersion')!r}, expected "
            f"{API_VERSION!r} (ODCS documents are read with from_odcs / load_contract)"
        )
    _only(
        doc,
        (
            "apiVersion",
            "kind",
            "dataset",
            "name",
            "owner",
            "description",
            "tags",
            "schema",
            "slaProperties",
        ),
        "contract",
    )
    schema = doc.get("schema") or [{}]
    if not isinstance(schema, list) or len(schema) != 1:
        raise DefinitionError("contract: schema must hold exactly one object (the dataset)")
    obj = schema[0]
    dataset = doc.get("dataset") or doc.get("name") or obj.get("name")
    where = f"contract {dataset!r}"
    if obj.get("name") not in (None, dataset):
        raise DefinitionError(
            f"{where}: schema object is named {obj.get('name')!r}; it must match the dataset"
        )
    _only(obj, ("name", "key", "properties", "quality"), f"{where} schema")
    columns, rules = [], []
    for prop in obj.get("properties") or []:
        _only(
            prop,
            (
                "name",
                "physicalType",
                "logicalType",
                "required",
                "description",
                "classification",
                "tags",
                "quality",
            ),
            f"{where} property",
        )
        name = prop.get("name")
        columns.append(
            Column(
                name,
                prop.get("physicalType"),
                nullable=not prop.get("required", False),
                description=prop.get("description", ""),
                classification=prop.get("classification", "internal"),
                tags=prop.get("tags") or {},
            )
        )
        rules += [
            rule_from_dict(r, column=name, where=f"{where} column {name!r}")
            for r in prop.get("quality") or []
        ]
    rules += [rule_from_dict(r, where=where) for r in obj.get("quality") or []]
    slos = [rule_from_dict(r, slo=True, where=where) for r in doc.get("slaProperties") or []]
    return Contract(
        dataset=dataset,
        columns=columns,
        rules=rules,
        slos=slos,
        key=obj.get("key") or (),
        owner=doc.get("owner", ""),
        description=doc.get("description", ""),
        tags=doc.get("tags") or {},
    )


def contract_to_yaml(contract: Contract) -> str:
    """The contract as featureledger YAML (one file per feature group)."""
    return _dump(contract_to_dict(contract))


def contract_from_yaml(text: str) -> Contract:
    """Read featureledger YAML written by `contract_to_yaml` or by hand."""
    return contract_from_dict(_load(text))


def load_contract(source: str | Path) -> Contract:
    """Read a contract from a path or YAML text, in featureledger's form or ODCS v3."""
    text = source.read_text() if isinstance(source, Path) else source
    if isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml")):
        text = Path(source).read_text()
    doc = _load(text)
    if isinstance(doc, Mapping) and str(doc.get("apiVersion", "")).startswith("v3"):
        return from_odcs(doc)
    return contract_from_dict(doc)


# libyaml's parser and emitter when present: the same safe types, several times faster
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(doc: Mapping[str, Any]) -> str:
    return yaml.dump(dict(doc), Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=100)


def _load(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)  # a safe loader, see above
    except yaml.YAMLError as exc:
        raise DefinitionError(f"contract YAML does not parse: {exc}") from exc


def _only(data: Any, allowed: Sequence[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise DefinitionError(f"{where}: expected a mapping, got {data!r}")
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise DefinitionError(f"{where}: unknown key(s) {unknown}; allowed: {list(allowed)}")


# -- ODCS export -----------------------------------------------------------------------------------
_LOGICAL = {
    "bool": "boolean",
    "string": "string",
    "binary": "string",
    "date": "date",
    "timestamp": "timestamp",
}


def _logical_type(dtype: pa.DataType) -> str:
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype):
        return "number"
    if pa.types.is_list(dtype):
        return "array"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    return _LOGICAL.get(
        str(dtype), {"date32[day]": "date", "large_string": "string"}.get(str(dtype), "string")
    )


def to_odcs(contract: Contract, *, version: str = "1.0.0", status: str = "active") -> str:
    """The contract as an ODCS v3.1.0 YAML document."""
    return _dump(to_odcs_dict(contract, version=version, status=status))


def to_odcs_dict(
    contract: Contract, *, version: str = "1.0.0", status: str = "active"
) -> dict[str, Any]:
    declared = set(contract.column_names)
    position = {k: i + 1 for i, k in enumerate(contract.key)}
    by_column: dict[str, list[dict[str, Any]]] = {}
    table_quality = []
    for r in contract.rules:
        own = rule_column(r)
        if own in declared:
            by_column.setdefault(own, []).append(_odcs_quality(r, contract, own))
        else:
            table_quality.append(_odcs_quality(r, contract, None))
    properties = []
    for c in contract.columns:
        assert isinstance(c, Column)
        prop: dict[str, Any] = {"name": c.name}
        if c.dtype is not None:
            prop["logicalType"] = _logical_type(c.dtype)
            prop["physicalType"] = c.type_name
        prop["required"] = not c.nullable
        if c.name in position:
            prop["primaryKey"] = True
            prop["primaryKeyPosition"] = position[c.name]
        if c.description:
            prop["description"] = c.description
        prop["classification"] = c.classification
        if c.tags:
            prop["tags"] = _tag_list(c.tags)
            prop["customProperties"] = [{"property": TAGS_PROPERTY, "value": dict(c.tags)}]
        if c.name in by_column:
            prop["quality"] = by_column[c.name]
        properties.append(prop)
    obj: dict[str, Any] = {
        "name": contract.dataset,
        "physicalName": contract.dataset,
        "logicalType": "object",
        "physicalType": "table",
    }
    if contract.description:
        obj["description"] = contract.description
    obj["properties"] = properties
    if table_quality:
        obj["quality"] = table_quality
    undeclared_key = [k for k in contract.key if k not in declared]
    if undeclared_key:
        obj["customProperties"] = [{"property": "featureledgerKey", "value": list(contract.key)}]
    doc: dict[str, Any] = {
        "apiVersion": ODCS_API_VERSION,
        "kind": "DataContract",
        "id": contract.dataset,
        "name": contract.dataset,
        "version": version,
        "status": status,
    }
    if contract.description:
        doc["description"] = {"purpose": contract.description}
    if contract.owner:
        doc["team"] = {"name": contract.owner}
    if contract.tags:
        doc["tags"] = _tag_list(contract.tags)
        doc["customProperties"] = [{"property": TAGS_PROPERTY, "value": dict(contract.tags)}]
    doc["schema"] = [obj]
    if contract.slos:
        doc["slaProperties"] = [_odcs_sla(r, contract) for r in contract.slos]
    return doc


def _tag_list(tags: Mapping[str, str]) -> list[str]:
    return [f"{k}:{v}" if v else k for k, v in tags.items()]


def _exact(rule: Rule) -> list[dict[str, Any]]:
    return [{"property": RULE_PROPERTY, "value": rule_to_dict(rule)}]


def _odcs_quality(rule: Rule, contract: Contract, column: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"name": rule.name}
    item.update(_odcs_check(rule, contract, column))
    item["severity"] = "error" if rule.severity == "error" else "warning"
    item["customProperties"] = _exact(rule)
    return item


def _odcs_check(rule: Rule, contract: Contract, column: str | None) -> dict[str, Any]:
    """The rule in ODCS terms: a library metric, a SQL count, or a custom featureledger item."""
    prop = "{property}" if column else None
    if isinstance(rule, NotNull) and column:
        return {"metric": "nullValues", "mustBe": 0, "dimension": "completeness"}
    if isinstance(rule, MaxNullFraction) and column:
        return {
            "metric": "nullValues",
            "mustBeLessOrEqualTo": rule.max_fraction * 100,
            "unit": "percent",
            "dimension": "completeness",
        }
    if isinstance(rule, AllowedValues) and column:
        return {
            "metric": "invalidValues",
            "arguments": {"validValues": _plain(rule.values)},
            "mustBe": 0,
            "dimension": "conformity",
        }
    if isinstance(rule, Regex) and column:
        return {
            "metric": "invalidValues",
            "arguments": {"pattern": rule.pattern},
            "mustBe": 0,
            "dimension": "conformity",
        }
    if isinstance(rule, Unique):
        cols = list(rule.columns or contract.key)
        out: dict[str, Any] = {"metric": "duplicateValues", "mustBe": 0, "dimension": "uniqueness"}
        if not column:
            out["arguments"] = {"properties": cols}
        return out
    if isinstance(rule, RowCount):
        return {"metric": "rowCount", **_between(rule.min, rule.max), "dimension": "completeness"}
    if isinstance(rule, Range) and column:
        conds = []
        if rule.min is not None:
            conds.append(f"{prop} < {_sql_value(rule.min)}")
        if rule.max is not None:
            conds.append(f"{prop} > {_sql_value(rule.max)}")
        return {
            "type": "sql",
            "query": f"SELECT COUNT(*) FROM {{object}} WHERE {' OR '.join(conds)}",
            "mustBe": 0,
            "dimension": "accuracy",
        }
    if isinstance(rule, Cardinality) and column:
        return {
            "type": "sql",
            "query": f"SELECT COUNT(DISTINCT {prop}) FROM {{object}}",
            **_between(rule.min, rule.max),
            "dimension": "coverage",
        }
    if isinstance(rule, Check):
        return {
            "type": "sql",
            "query": f"SELECT COUNT(*) FROM {{object}} WHERE NOT ({rule.expression})",
            "mustBe": 0,
            "dimension": "consistency",
        }
    return {
        "type": "custom",
        "engine": "featureledger",
        "implementation": _dump(rule_to_dict(rule)),
    }


def _between(low: Any, high: Any) -> dict[str, Any]:
    if low is not None and high is not None:
        return {"mustBeBetween": [low, high]}
    if low is not None:
        return {"mustBeGreaterOrEqualTo": low}
    return {"mustBeLessOrEqualTo": high}


def _sql_value(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text.replace("'", "''") + "'"


def _odcs_sla(rule: Rule, contract: Contract) -> dict[str, Any]:
    item: dict[str, Any]
    if isinstance(rule, Freshness):
        value, unit = _duration_unit(rule.max_age)
        item = {
            "property": "freshness",
            "value": value,
            "unit": unit,
            "element": f"{contract.dataset}.{rule.column}",
        }
    elif isinstance(rule, IngestionDelay):
        value, unit = _duration_unit(rule.max_delay)
        item = {
            "property": "latency",
            "value": value,
            "unit": unit,
            "element": f"{contract.dataset}.{rule.event_column},"
            f"{contract.dataset}.{rule.created_column}",
        }
    else:  # pragma: no cover - Contract only admits the two SLO kinds
        raise DefinitionError(f"not an SLO: {rule!r}")
    item["driver"] = "operational"
    item["description"] = rule.name + (" (warn)" if rule.severity == "warn" else "")
    item["customProperties"] = _exact(rule)
    return item


def _duration_unit(td: timedelta) -> tuple[int | float, str]:
    for unit, size in (
        ("d", timedelta(days=1)),
        ("h", timedelta(hours=1)),
        ("min", timedelta(minutes=1)),
        ("s", timedelta(seconds=1)),
    ):
        if td % size == timedelta(0):
            return td // size, unit
    return td.total_seconds(), "s"


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


__all__ = [
    "API_VERSION",
    "ODCS_API_VERSION",
    "contract_from_dict",
    "contract_from_yaml",
    "contract_to_dict",
    "contract_to_yaml",
    "from_odcs",
    "load_contract",
    "rule_from_dict",
    "rule_to_dict",
    "to_odcs",
    "to_odcs_dict",
]
