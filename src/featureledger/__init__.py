"""featureledger: a feature store that keeps the books."""

from featureledger.definitions import Entity, FeatureGroup, FeatureView, Field, VersionId
from featureledger.errors import FeatureLedgerError
from featureledger.hashing import ContentHash, content_hash
from featureledger.store import FeatureStore, Plan, TrainingData

__version__ = "0.1.0"

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
