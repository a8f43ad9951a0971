"""Feature pipelines: where a group's rows come from and how they are computed."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from featureledger.definitions.code import CodeHash, function_hash, legacy_source_hash
from featureledger.errors import DefinitionError


@dataclass(frozen=True)
class FileSource:
    """A Parquet or CSV file (or Parquet folder); ``timestamp_column`` windows it."""

    path: str
    timestamp_column: str = "event_timestamp"
    #: licences of the raw data; they propagate to the group and everything built on it
    licenses: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "file",
            "path": self.path,
            "timestamp_column": self.timestamp_column,
        }
        if self.licenses:
            out["licenses"] = list(self.licenses)
        return out


@dataclass(frozen=True)
class GroupSource:
    """Another feature group (a pinned data version of it), windowed on its event time."""

    group: str
    major: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": "group", "group": self.group, "major": self.major}


Source = FileSource | GroupSource


@dataclass(frozen=True)
class SQLTransform:
    """A DuckDB query over the table ``source`` (the window); ``$start``/``$end`` bind."""

    query: str

    @property
    def code_hash(self) -> str:
        return hashlib.sha256(self.query.strip().encode()).hexdigest()[:16]

    @property
    def module_hash(self) -> str:
        return self.code_hash

    def to_dict(self) -> dict[str, Any]:
        return {"type": "sql", "query": self.query, "code_hash": self.code_hash}


@dataclass(frozen=True)
class PythonTransform:
    """``function(source: pyarrow.Table, start, end)`` returning a table-like.

    The registry keeps the function's ``fn1:`` code hash (its normalized source and what
    it references, see `featureledger.definitions.code`) and the hash of each part; the
    code stays in the repository. ``name`` is the function's qualified name, without its
    module, so the CLI and Python record the same definition.
    """

    function: Callable[..., Any] | None = None
    name: str = ""
    recorded_code_hash: str = ""
    recorded_module_hash: str = ""
    imports: tuple[str, ...] = field(default=())
    recorded_code_parts: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.function is None and not self.name:
            raise DefinitionError("PythonTransform needs a function")
        if self.function is not None:
            object.__setattr__(self, "name", self.function.__qualname__)

    def _hash(self) -> CodeHash | None:
        return None if self.function is None else function_hash(self.function)

    @property
    def code_hash(self) -> str:
        """``fn1:<16 hex>``; a definition recorded before ``fn1`` keeps its old hash."""
        found = self._hash()
        return self.recorded_code_hash if found is None else found.value

    @property
    def code_parts(self) -> Mapping[str, str]:
        """The hash of the function's body and of each name it reaches (to name a change)."""
        found = self._hash()
        return self.recorded_code_parts if found is None else found.parts

    @property
    def legacy_code_hash(self) -> str:
        """The hash runs recorded before ``fn1`` (the function's raw source text)."""
        if self.function is None:
            return self.recorded_code_hash
        return legacy_source_hash(self.function)

    @property
    def module_hash(self) -> str:
        """The whole module's source, as runs recorded it before ``fn1`` (for their reports)."""
        if self.function is None:
            return self.recorded_module_hash
        module = inspect.getmodule(self.function)
        text = inspect.getsource(module) if module is not None else ""
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def module_imports(self) -> list[str]:
        """Top-level names of the packages the function (and the helpers it calls) uses."""
        found = self._hash()
        return list(self.imports) if found is None else list(found.packages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "python",
            "name": self.name,
            "code_hash": self.code_hash,
            "code_parts": dict(self.code_parts),
            "imports": self.module_imports(),
        }


Transform = SQLTransform | PythonTransform


def source_from_dict(data: Mapping[str, Any] | None) -> Source | None:
    if data is None:
        return None
    if data["type"] == "file":
        return FileSource(
            data["path"],
            data.get("timestamp_column", "event_timestamp"),
            tuple(data.get("licenses", ())),
        )
    return GroupSource(data["group"], data.get("major"))


def transform_from_dict(data: Mapping[str, Any] | None) -> Transform | None:
    if data is None:
        return None
    if data["type"] == "sql":
        return SQLTransform(data["query"])
    return PythonTransform(
        None,
        name=data["name"],
        recorded_code_hash=data.get("code_hash", ""),
        recorded_module_hash=data.get("module_hash", ""),
        imports=tuple(data.get("imports", ())),
        recorded_code_parts=dict(data.get("code_parts", {})),
    )
