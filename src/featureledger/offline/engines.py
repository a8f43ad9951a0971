"""Engines by name: ONE dict of lazy factories, so a heavy driver is imported only when a
repository configured with it opens.

A factory is a callable ``(config, repo, storage) -> OfflineEngine`` or the ``"module:attribute"``
path of one. Adding an engine is one module implementing `OfflineEngine` (its settings read
from ``config.offline``) plus its entry here; the conformance suite in ``tests/offline/``
then runs against it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from featureledger.errors import ConfigError

if TYPE_CHECKING:
    from featureledger.config import RepoConfig
    from featureledger.offline.base import OfflineEngine
    from featureledger.storage import Storage

EngineFactory: TypeAlias = "str | Callable[[RepoConfig, Path, Storage | None], OfflineEngine]"

ENGINES: dict[str, EngineFactory] = {
    "daft": "featureledger.offline.daft:DaftEngine.from_config",
    "duckdb": "featureledger.offline.duckdb:DuckDBEngine.from_config",
}


def engine_factory(name: str) -> Callable[[RepoConfig, Path, Storage | None], OfflineEngine]:
    """The factory registered as ``name``, imported now if given as a path."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ConfigError(
            f"offline.engine {name!r} is not a known engine; known: {', '.join(sorted(ENGINES))}"
        ) from None
    if callable(factory):
        return factory
    module, _, attribute = factory.partition(":")
    found: object = importlib.import_module(module)
    for part in attribute.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise ConfigError(f"engine {name!r}: {factory} is not callable")
    return found


def create_engine(
    config: RepoConfig, repo: str | Path, storage: Storage | None = None
) -> OfflineEngine:
    """The engine ``config.offline.engine`` names, set up from ``config`` for ``repo``;
    ``storage`` is where remote snapshots are read from (the repository's table storage)."""
    return engine_factory(config.offline.engine)(config, Path(repo), storage)


@functools.cache
def default_engine() -> OfflineEngine:
    """A process-wide embedded DuckDB engine, for library calls made without a store
    (`contracts.evaluate`, `monitoring.compute_stats`, ...); the store passes its own."""
    from featureledger.offline.duckdb import DuckDBEngine

    return DuckDBEngine()  # no spill folder: nothing is written beside the caller
