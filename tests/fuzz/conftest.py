"""Fixtures of the fuzz suite: one store per module (examples accumulate versions in it, as
a long-lived repository would) and the feature server over it, called in process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from featureledger import FeatureStore

from .cases import make_store


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return make_store(tmp_path_factory.mktemp("fuzz") / "repo")


@pytest.fixture(scope="module")
def http(fuzz_store: FeatureStore) -> Iterator[tuple[Any, dict[str, str]]]:
    from fastapi.testclient import TestClient

    from featureledger.server import create_app

    tokens = {
        "writer": fuzz_store.create_token("writer"),
        "reader": fuzz_store.create_token("reader"),
    }
    with TestClient(create_app(fuzz_store, max_body_bytes=1 << 20)) as client:
        yield client, tokens


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path
