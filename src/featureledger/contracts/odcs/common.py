"""Constants, the rule <-> dict mapping and YAML helpers shared by both contract forms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import timedelta
from typing import Any

import pyarrow as pa
import yaml

from featureledger.definitions.contract import (
    QUALITY_RULES,
    SLO_RULES,
    Rule,
    Unique,
    format_duration,
)
from featureledger.errors import DefinitionError

API_VERSION = "featureledger/v1"
ODCS_API_VERSION = "v3.1.0"
#: customProperties keys that carry featureledger's exact forms through ODCS
RULE_PROPERTY = "featureledgerRule"
TAGS_PROPERTY = "featureledgerTags"
#: the contract-level customProperties key mapping SLA item ids to their exact SLO forms
SLOS_PROPERTY = "featureledgerSlos"
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
    # a kind that is not a string (a list, a mapping) cannot name a rule
    cls = kinds.get(data["rule"]) if isinstance(data["rule"], str) else None
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
