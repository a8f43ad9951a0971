"""ODCS v3.1.0 export: `to_odcs` writes each rule in ODCS terms and keeps its exact form."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from featureledger.contracts.odcs.common import (
    ODCS_API_VERSION,
    RULE_PROPERTY,
    SLOS_PROPERTY,
    TAGS_PROPERTY,
    _dump,
    _logical_type,
    _plain,
    rule_to_dict,
)
from featureledger.definitions.contract import (
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
    rule_column,
)
from featureledger.errors import DefinitionError


# -- ODCS export -----------------------------------------------------------------------------------
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
    custom = []
    if contract.tags:
        doc["tags"] = _tag_list(contract.tags)
        custom.append({"property": TAGS_PROPERTY, "value": dict(contract.tags)})
    if contract.slos:
        # SLA items admit no customProperties, so their exact forms sit on the contract,
        # keyed by each item's id
        ids = [f"slo_{i + 1}" for i in range(len(contract.slos))]
        custom.append(
            {
                "property": SLOS_PROPERTY,
                "value": {i: rule_to_dict(r) for i, r in zip(ids, contract.slos, strict=True)},
            }
        )
    if custom:
        doc["customProperties"] = custom
    doc["schema"] = [obj]
    if contract.slos:
        doc["slaProperties"] = [
            {"id": i, **_odcs_sla(r, contract)} for i, r in zip(ids, contract.slos, strict=True)
        ]
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
    if low is not None and low == high:
        return {"mustBe": low}  # ODCS wants mustBeBetween's two numbers distinct
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
