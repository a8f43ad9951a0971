"""Pure definitions: what users declare. No I/O happens here.

The names below are imported on first use: `identity` (which the registry's records use)
needs nothing heavy, while the field types pull in PyArrow, which commands that only read
the registry never need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featureledger.definitions.contract import Contract
    from featureledger.definitions.entity import Entity
    from featureledger.definitions.feature_group import FeatureGroup, FeatureSelection
    from featureledger.definitions.feature_view import FeatureView, ViewSource
    from featureledger.definitions.field import Field
    from featureledger.definitions.identity import VersionId
    from featureledger.definitions.pipeline import (
        FileSource,
        GroupSource,
        PythonTransform,
        SQLTransform,
    )
    from featureledger.definitions.types import TIMESTAMP, parse_type, type_name

    Definition = Entity | FeatureGroup | FeatureView

_LAZY = {
    "Contract": "contract",
    "Entity": "entity",
    "FeatureGroup": "feature_group",
    "FeatureSelection": "feature_group",
    "FeatureView": "feature_view",
    "ViewSource": "feature_view",
    "Field": "field",
    "VersionId": "identity",
    "FileSource": "pipeline",
    "GroupSource": "pipeline",
    "PythonTransform": "pipeline",
    "SQLTransform": "pipeline",
    "TIMESTAMP": "types",
    "parse_type": "types",
    "type_name": "types",
}


def __getattr__(name: str) -> Any:
    if name == "Definition":
        value: Any = (
            __getattr__("Entity") | __getattr__("FeatureGroup") | __getattr__("FeatureView")
        )
    elif name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"Definition"})


__all__ = [
    "TIMESTAMP",
    "Contract",
    "Definition",
    "Entity",
    "FeatureGroup",
    "FeatureSelection",
    "FeatureView",
    "Field",
    "FileSource",
    "GroupSource",
    "PythonTransform",
    "SQLTransform",
    "VersionId",
    "ViewSource",
    "parse_type",
    "type_name",
]
