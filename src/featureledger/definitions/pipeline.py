"""Feature pipelines: where a group's rows come from and how they are computed."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

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

    The function's own source and its module's source are hashed: the registry keeps
    the hashes, the code stays in the repository.
    """

    function: Callable[..., Any] | None = None
    name: str = ""
    recorded_code_hash: str = ""
    recorded_module_hash: str = ""
    imports: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.function is None and not self.name:
            raise DefinitionError("PythonTransform needs a function")
        if self.function is not None:
            fn = self.function
            object.__setattr__(self, "name", f"{fn.__module__}.{fn.__qualname__}")

    @property
    def code_hash(self) -> str:
        if self.function is None:
            return self.recorded_code_hash
        return hashlib.sha256(inspect.getsource(self.function).encode()).hexdigest()[:16]

    @property
    def module_hash(self) -> str:
        if self.function is None:
            return self.recorded_module_hash
        module = inspect.getmodule(self.function)
        text = inspect.getsource(module) if module is not None else ""
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def module_imports(self) -> list[str]:
        """Top-level names of the modules the function's module imports."""
        import ast

        module = None if self.function is None else inspect.getmodule(self.function)
        if module is None:
            return list(self.imports)
        names: set[str] = set()
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        return sorted(names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "python",
            "name": self.name,
            "code_hash": self.code_hash,
            "module_hash": self.module_hash,
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
    )
