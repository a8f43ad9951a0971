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

    def predictions(self, name: str) -> DeltaGroupTable:
        """Batch predictions written under ``predictions/NAME`` (one data version per run)."""
        return DeltaGroupTable(self.storage.uri("_predictions", name), self.storage)

    def prediction_log(self, kind: str, name: str) -> DeltaGroupTable:
        """Logged predictions of ``deployment`` NAME (served) or ``model`` NAME (batch)."""
        return DeltaGroupTable(self.logs_root / "_logs" / "_predictions" / f"{kind}={name}")

    def labels(self, deployment: str) -> DeltaGroupTable:
        """Delayed labels sent for a deployment's predictions."""
        return DeltaGroupTable(self.logs_root / "_logs" / "_labels" / deployment)
