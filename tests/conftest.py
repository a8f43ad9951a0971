"""Shared fixtures for the featureledger test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from featureledger import FeatureStore


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    """A fresh, empty repository in a temporary folder."""
    return FeatureStore.init(tmp_path / "repo")
