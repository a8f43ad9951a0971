"""What changed between two data versions of a feature group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ColumnStats:
    """Summary of one column in one version."""

    count: int
    nulls: int
    distinct: int | None = None
    min: Any = None
    max: Any = None
    mean: float | None = None


@dataclass
class DataDiff:
    """Rows added, removed and changed by (primary key, event time), and schema changes."""

    group: str
    old: str
    new: str
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    columns_retyped: dict[str, tuple[str, str]] = field(default_factory=dict)
    rows_old: int = 0
    rows_new: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    #: per column: how many rows present in both versions have a different value
    changed_by_column: dict[str, int] = field(default_factory=dict)
    stats_old: dict[str, ColumnStats] = field(default_factory=dict)
    stats_new: dict[str, ColumnStats] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (
            self.added
            or self.removed
            or self.changed
            or self.columns_added
            or self.columns_removed
            or self.columns_retyped
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "old": self.old,
            "new": self.new,
            "schema": {
                "added": self.columns_added,
                "removed": self.columns_removed,
                "retyped": {k: list(v) for k, v in self.columns_retyped.items()},
            },
            "rows": {
                "old": self.rows_old,
                "new": self.rows_new,
                "added": self.added,
                "removed": self.removed,
                "changed": self.changed,
                "unchanged": self.unchanged,
            },
            "changed_by_column": self.changed_by_column,
            "stats": {
                name: {
                    "old": _stats(self.stats_old.get(name)),
                    "new": _stats(self.stats_new.get(name)),
                }
                for name in sorted(set(self.stats_old) | set(self.stats_new))
            },
            "examples": self.examples,
        }


def _stats(s: ColumnStats | None) -> dict[str, Any] | None:
    return None if s is None else dict(s.__dict__)
