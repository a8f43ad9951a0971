"""Where a repository's Delta tables live: feature-group tables and their quarantine tables
on the configured storage (a local folder or ``s3://bucket/prefix``), and the feature logs
of served views on local disk."""

from __future__ import annotations

from pathlib import Path

from featureledger.offline import DeltaGroupTable
from featureledger.offline.delta import group_table_uri
from featureledger.storage import Storage


class Tables:
    """Locates the Delta tables of a repository (one per group major version)."""

    def __init__(self, storage: Storage, logs_root: Path) -> None:
        self.storage = storage
        #: served-feature logs are written by the serving process itself, so they stay local
        self.logs_root = logs_root

    def table(self, group: str, major: int) -> DeltaGroupTable:
        """The table of ``feature_group/GROUP@vMAJOR``."""
        return DeltaGroupTable(group_table_uri(self.storage, group, major), self.storage)

    def quarantine(self, group: str, major: int) -> DeltaGroupTable:
        """Rows a group's contract held back, with the run that held them."""
        return DeltaGroupTable(self.storage.uri(group, f"v{major}_quarantine"), self.storage)

    def feature_log(self, view: str, major: int) -> DeltaGroupTable:
        """Served rows logged for ``feature_view/VIEW@vMAJOR``."""
        return DeltaGroupTable(self.logs_root / "_logs" / view / f"v{major}")
