"""How each registry record maps to its table's row, without SQLAlchemy: the SQL backend
writes and reads through these, and so does the read-only SQLite reader (`lite`) that the
light commands use."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from featureledger.digest import ContentHash
from featureledger.errors import IntegrityError
from featureledger.registry.base import (
    DataVersion,
    DefinitionRecord,
    DeploymentRecord,
    ModelRecord,
    RunRecord,
    TokenRecord,
    TrainingDatasetRecord,
    ValidationRecord,
)


def utc(value: datetime | str | None) -> datetime | None:
    """A stored time as an aware UTC datetime.

    SQLite hands back naive datetimes through SQLAlchemy, and the text SQLAlchemy wrote
    through the standard library's driver; every time stored here is UTC.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


_COLUMNS = {"user": "user_name", "group": "group_name"}


@dataclass(frozen=True)
class Codec:
    """Maps one record dataclass to its table's rows: JSON, content-hash and time columns
    are encoded on the way in and decoded on the way out, the rest pass through."""

    cls: type
    json: frozenset[str] = frozenset()
    hashes: frozenset[str] = frozenset()
    times: frozenset[str] = frozenset()

    def to_row(self, record: Any, **overrides: Any) -> dict[str, Any]:
        row = {}
        for f in fields(self.cls):
            value = getattr(record, f.name)
            if f.name in self.json:
                value = dump(value)
            elif f.name in self.hashes:
                value = dump(value.to_dict())
            row[_COLUMNS.get(f.name, f.name)] = value
        row.update({_COLUMNS.get(k, k): v for k, v in overrides.items()})
        return row

    def from_row(self, row: Any) -> Any:
        values = {}
        for f in fields(self.cls):
            value = row[_COLUMNS.get(f.name, f.name)]
            try:
                if f.name in self.json:
                    value = json.loads(value)
                elif f.name in self.hashes:
                    value = ContentHash.from_dict(json.loads(value))
                    parts = (value.rows, value.lane_a, value.lane_b)
                    if not all(0 <= v < 2**64 for v in parts):
                        raise ValueError(f"values out of range: {value.to_dict()}")
                elif f.name in self.times:
                    value = utc(value)
            except Exception as exc:  # a corrupt registry row: name it, never a traceback
                raise IntegrityError(
                    f"registry record {self.cls.__name__} {_key(row)}: its {f.name} field is "
                    f"corrupt ({type(exc).__name__}: {exc}); it was edited outside featureledger. "
                    "Run `featureledger audit verify`, and restore the registry from a backup"
                ) from exc
            values[f.name] = value
        return self.cls(**values)


def _key(row: Any) -> str:
    names = ("kind", "group_name", "view", "name", "major", "version", "number", "id", "run_id")
    present = set(row.keys())  # SQLAlchemy's RowMapping and sqlite3.Row both have keys()
    return ", ".join(f"{n}={row[n]!r}" for n in names if n in present)


DEFINITION = Codec(
    DefinitionRecord, json=frozenset({"spec", "reasons"}), times=frozenset({"created_at"})
)
DATA_VERSION = Codec(
    DataVersion,
    json=frozenset({"files"}),
    hashes=frozenset({"content"}),
    times=frozenset({"created_at"}),
)
RUN = Codec(
    RunRecord,
    json=frozenset({"params", "inputs", "outputs"}),
    times=frozenset({"started_at", "ended_at", "heartbeat_at"}),
)
TRAINING = Codec(
    TrainingDatasetRecord,
    json=frozenset({"pins", "columns", "params"}),
    hashes=frozenset({"content"}),
    times=frozenset({"created_at"}),
)
VALIDATION = Codec(ValidationRecord, json=frozenset({"report"}), times=frozenset({"created_at"}))
MODEL = Codec(ModelRecord, json=frozenset({"metrics", "gates"}), times=frozenset({"created_at"}))
DEPLOYMENT = Codec(DeploymentRecord, json=frozenset({"config"}), times=frozenset({"at"}))
TOKEN = Codec(TokenRecord, json=frozenset({"views"}), times=frozenset({"created_at", "revoked_at"}))
