"""Where a repository's Delta tables live: feature-group tables, their quarantine tables
and the feature logs of served views, under the configured offline root."""

from __future__ import annotations

from pathlib import Path

from featureledger.offline import DeltaGroupTable


class Tables:
    """Locates the Delta tables of a repository (one per group major version)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def table(self, group: str, major: int) -> DeltaGroupTable:
        """The table of ``feature_group/GROUP@vMAJOR``."""
        return DeltaGroupTable(self.root / group / f"v{major}")

    def quarantine(self, group: str, major: int) -> DeltaGroupTable:
        """Rows a group's contract held back, with the run that held them."""
        return DeltaGroupTable(self.root / group / f"v{major}_quarantine")

    def feature_log(self, view: str, major: int) -> DeltaGroupTable:
        """Served rows logged for ``feature_view/VIEW@vMAJOR``."""
        return DeltaGroupTable(self.root / "_logs" / view / f"v{major}")
