"""featureledger's own contract YAML form (``apiVersion: featureledger/v1``) and `load_contract`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featureledger.contracts.odcs.common import (
    API_VERSION,
    _dump,
    _load,
    _logical_type,
    _only,
    rule_from_dict,
    rule_to_dict,
)
from featureledger.contracts.odcs.reader import OdcsImport, import_odcs
from featureledger.definitions.contract import (
    Column,
    Contract,
    rule_column,
)
from featureledger.errors import DefinitionError, NotFoundError


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
    return read_contract(source).contract


def read_contract(
    source: str | Path, *, lenient: bool = False, object: str | None = None
) -> OdcsImport:
    """`load_contract` with `import_odcs`'s options for ODCS documents; also returns what a
    lenient ODCS import dropped."""
    path: Path | None = source if isinstance(source, Path) else None
    if isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml")):
        path = Path(source)
    if path is None:
        text = str(source)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise NotFoundError(
                f"contract file {str(path)!r} does not exist; check the path (relative paths "
                f"are read from {str(Path.cwd())!r})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DefinitionError(f"contract file {str(path)!r} could not be read: {exc}") from None
    doc = _load(text)
    if isinstance(doc, Mapping) and str(doc.get("apiVersion", "")).startswith("v3"):
        return import_odcs(doc, lenient=lenient, object=object)
    return OdcsImport(contract_from_dict(doc))
