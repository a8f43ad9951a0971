"""A read-only reader of a SQLite registry through the standard library's driver.

The light commands (`list`, `versions`, `show`) use it so that they start in a fraction of
the time SQLAlchemy takes to import. It reads the same tables as `sql.SQLRegistry`, decodes
rows with the same codecs, and never writes: it neither migrates nor repairs. Any doubt
(an older or newer schema, a locked or missing file) is raised as `LiteUnavailable`, and the
caller asks the full store instead.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from featureledger.registry.base import DataVersion, DefinitionRecord, TrainingDatasetRecord
from featureledger.registry.codec import DATA_VERSION, DEFINITION, TRAINING, Codec


class LiteUnavailable(Exception):
    """This registry cannot be read here; use the full store."""


def sqlite_path(url: str) -> Path | None:
    """The file of a plain ``sqlite:///...`` URL; None for any other registry (including a
    URL naming a driver or options, which only SQLAlchemy interprets)."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url.removeprefix("sqlite:///")
    if not rest or rest.startswith(":memory:") or "?" in rest:
        return None
    return Path(rest)


class SQLiteReader:
    """Reads definitions, data versions and training datasets; writes nothing."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise LiteUnavailable(f"{path} does not exist")
        try:
            self._conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=0.2)
        except sqlite3.Error as exc:
            raise LiteUnavailable(str(exc)) from exc
        self._conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self._conn.close()

    def _rows(self, codec: Codec, sql: str, *params: Any) -> list[Any]:
        try:
            return [codec.from_row(row) for row in self._conn.execute(sql, params)]
        except (sqlite3.Error, IndexError, KeyError, ValueError, TypeError) as exc:
            # IndexError: a column the records expect is missing (a schema this release
            # would migrate first); the full store handles it
            raise LiteUnavailable(str(exc)) from exc

    def definitions(self, kind: str, name: str | None = None) -> list[DefinitionRecord]:
        sql = "SELECT * FROM fl_definitions WHERE kind = ?"
        params: list[Any] = [kind]
        if name is not None:
            sql += " AND name = ?"
            params.append(name)
        return self._rows(DEFINITION, sql + " ORDER BY name, major, minor, patch", *params)

    def latest_definition(
        self, kind: str, name: str, major: int | None = None
    ) -> DefinitionRecord | None:
        sql = "SELECT * FROM fl_definitions WHERE kind = ? AND name = ?"
        params: list[Any] = [kind, name]
        if major is not None:
            sql += " AND major = ?"
            params.append(major)
        sql += " ORDER BY major DESC, minor DESC, patch DESC LIMIT 1"
        found = self._rows(DEFINITION, sql, *params)
        return found[0] if found else None

    def data_versions(self, group: str, major: int) -> list[DataVersion]:
        return self._rows(
            DATA_VERSION,
            "SELECT * FROM fl_data_versions WHERE group_name = ? AND major = ? ORDER BY version",
            group,
            major,
        )

    def training_datasets(self, view: str, major: int | None = None) -> list[TrainingDatasetRecord]:
        sql = "SELECT * FROM fl_training_datasets WHERE view = ?"
        params: list[Any] = [view]
        if major is not None:
            sql += " AND major = ?"
            params.append(major)
        return self._rows(TRAINING, sql + " ORDER BY major, number", *params)
