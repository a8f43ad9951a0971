"""How definitions are kept in the registry: a group's spec carries its contract as YAML."""

from __future__ import annotations

import dataclasses
from typing import Any

from featureledger.contracts import contract_from_yaml, contract_to_yaml
from featureledger.definitions import FeatureGroup


def group_spec(group: FeatureGroup) -> dict[str, Any]:
    """A group's registry spec: its definition plus its contract in YAML form."""
    spec = group.to_dict()
    if group.contract is not None:
        spec["contract"] = contract_to_yaml(group.contract)
    return spec


def group_from_spec(spec: dict[str, Any], major: int) -> FeatureGroup:
    group = FeatureGroup.from_dict(spec, major)
    if spec.get("contract"):
        group = dataclasses.replace(group, contract=contract_from_yaml(spec["contract"]))
    return group
