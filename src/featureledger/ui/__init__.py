"""The web UI: server-rendered pages over the `FeatureStore` facade (docs/ui.md)."""

from featureledger.ui.app import create_ui

__all__ = ["create_ui"]
