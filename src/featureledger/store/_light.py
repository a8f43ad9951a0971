"""The light catalog: `list`, `versions` and `show` answered from a SQLite registry file
with the standard library alone, without opening the store.

It answers only when its answer is the store's answer: the registry is a local SQLite
file, the tables are on local disk, and every commit in a group's Delta log is recorded
(otherwise the store would first record what a crashed writer left, see
`VersionRecords.sync`). In every other case, and on any error, a method returns None and
the caller asks the store, which also gives the error messages.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from featureledger.config import RepoConfig, is_remote_path
from featureledger.definitions.identity import VersionId
from featureledger.errors import FeatureLedgerError
from featureledger.registry.base import DataVersion, DefinitionRecord, TrainingDatasetRecord
from featureledger.registry.lite import LiteUnavailable, SQLiteReader, sqlite_path
from featureledger.store import _describe as describe

_COMMIT = re.compile(r"^(\d{20})\.json$")


def delta_head(table: Path) -> int | None:
    """The newest commit in a local Delta table's log (None: no table there yet)."""
    try:
        names = os.listdir(table / "_delta_log")
    except FileNotFoundError:
        return None
    versions = [int(m.group(1)) for m in map(_COMMIT.match, names) if m]
    return max(versions) if versions else None


class LightCatalog:
    """Read-only answers for the light commands, or None where the store must answer."""

    def __init__(self, reader: SQLiteReader, tables_root: Path) -> None:
        self._reader = reader
        self._tables_root = tables_root

    @classmethod
    def open(cls, repo: Path) -> LightCatalog | None:
        """The light catalog of ``repo``, or None when its registry or tables are not local."""
        repo = repo.resolve()
        try:
            config = RepoConfig.load(repo)
            path = sqlite_path(config.registry_url(repo))
            tables = config.offline.path
            if path is None or is_remote_path(tables) or config.storage.to_options():
                return None
            return cls(SQLiteReader(path), config.resolve(repo, tables).resolve())
        except (FeatureLedgerError, LiteUnavailable, OSError):
            return None

    def close(self) -> None:
        self._reader.close()

    def _table(self, group: str, major: int) -> Path:
        # the layout of `offline.delta.group_table_uri` on local storage
        return self._tables_root / group / f"v{major}"

    def _synced(self, group: str, major: int) -> list[DataVersion] | None:
        """The group's data versions when they cover its Delta log, else None."""
        versions = self._reader.data_versions(group, major)
        head = delta_head(self._table(group, major))
        if head is not None and set(range(head + 1)) - {v.version for v in versions}:
            return None
        return versions

    def _answer(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (LiteUnavailable, FeatureLedgerError, OSError):
            return None

    def list_definitions(self, kind: str) -> list[DefinitionRecord] | None:
        return self._answer(self._reader.definitions, kind)

    def training_datasets(self, view: str) -> list[TrainingDatasetRecord] | None:
        return self._answer(self._reader.training_datasets, view)

    def versions(self, group: str, major: int | None = None) -> list[DataVersion] | None:
        def run() -> list[DataVersion] | None:
            rec = self._reader.latest_definition("feature_group", group, major)
            return None if rec is None else self._synced(rec.name, rec.major)

        return self._answer(run)

    def show(self, identity: str) -> dict[str, Any] | None:
        def run() -> dict[str, Any] | None:
            ident = VersionId.parse(identity)
            if ident.kind not in ("entity", "feature_view", "feature_group", "training_dataset"):
                return None
            if ident.kind == "training_dataset":
                records = self._reader.training_datasets(ident.name, ident.major)
                return describe.training_dataset(ident, records) if records else None
            major = None if ident.kind == "entity" else ident.major
            rec = self._reader.latest_definition(ident.kind, ident.name, major)
            if rec is None:
                return None
            if ident.kind != "feature_group":
                return describe.definition(ident, rec)
            if ident.data is None:
                # the group itself: its classification is derived through the pipelines
                # that feed it (`lineage.privacy`), which is the store's to compute
                return None
            versions = self._synced(rec.name, rec.major)
            return None if versions is None else describe.data_version_of(ident, versions)

        return self._answer(run)
