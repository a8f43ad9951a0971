"""Pure definitions: what users declare. No I/O happens here."""

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
