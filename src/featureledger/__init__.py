"""featureledger: a feature store that keeps the books."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from featureledger.errors import FeatureLedgerError

if TYPE_CHECKING:
    from featureledger.definitions import Entity, FeatureGroup, FeatureView, Field, VersionId
    from featureledger.hashing import ContentHash, content_hash
    from featureledger.store import FeatureStore, Plan, TrainingData

__version__ = "0.1.0"

# Imported on first use: the store pulls in DuckDB, Delta Lake, the contracts and the
# monitoring stack, the definitions pyarrow; `featureledger --help` (which imports this
# package) needs none of them.
_LAZY = {
    "Entity": "featureledger.definitions",
    "FeatureGroup": "featureledger.definitions",
    "FeatureView": "featureledger.definitions",
    "Field": "featureledger.definitions",
    "VersionId": "featureledger.definitions",
    "ContentHash": "featureledger.hashing",
    "content_hash": "featureledger.hashing",
    "FeatureStore": "featureledger.store",
    "Plan": "featureledger.store",
    "TrainingData": "featureledger.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'featureledger' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ContentHash",
    "Entity",
    "FeatureGroup",
    "FeatureLedgerError",
    "FeatureStore",
    "FeatureView",
    "Field",
    "Plan",
    "TrainingData",
    "VersionId",
    "__version__",
    "content_hash",
]
