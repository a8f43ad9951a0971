"""Feature pipelines: where a group's rows come from and how they are computed."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
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


def _declassify(owner: str, value: Mapping[str, str]) -> dict[str, str]:
    """``declassify`` checked: output column -> a non-empty reason."""
    if isinstance(value, str) or not isinstance(value, Mapping):
        raise DefinitionError(
            f"{owner}: declassify must map output columns to the reason each is not "
            f"private, e.g. {{'email_hash': 'salted SHA-256, salt not stored'}}; got {value!r}"
        )
    out = {}
    for column, reason in value.items():
        if not isinstance(reason, str) or not reason.strip():
            raise DefinitionError(
                f"{owner}: declassify[{column!r}] needs a reason (why the column no longer "
                "identifies anyone); it is recorded and shown by `featureledger show`"
            )
        out[str(column)] = reason.strip()
    return out


@dataclass(frozen=True)
class SQLTransform:
    """A DuckDB query over the table ``source`` (the window); ``$start``/``$end`` bind.

    Output columns computed from pii or sensitive columns of a source group are private
    too (column lineage through sqlglot; every column when it cannot be followed), except
    those ``declassify`` names, each with the reason it no longer identifies anyone.
    """

    query: str
    declassify: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "declassify", _declassify("SQLTransform", self.declassify))

    @property
    def code_hash(self) -> str:
        return hashlib.sha256(self.query.strip().encode()).hexdigest()[:16]

    @property
    def module_hash(self) -> str:
        return self.code_hash

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "sql", "query": self.query, "code_hash": self.code_hash}
        if self.declassify:  # only when set, so existing definitions keep their hash
            out["declassify"] = dict(sorted(self.declassify.items()))
        return out


@dataclass(frozen=True)
class PythonTransform:
    """``function(source: pyarrow.Table, start, end)`` returning a table-like.

    The registry keeps the function's ``fn1:`` code hash (its normalized source and what
    it references, see `featureledger.definitions.code`) and the hash of each part; the
    code stays in the repository. ``name`` is the function's qualified name, without its
    module, so the CLI and Python record the same definition.

    ``inputs`` declares, per output column, the source columns it is computed from; an
    output column not declared is taken to read every source column, so it is private when
    any of them is. ``declassify`` works as for `SQLTransform`.
    """

    function: Callable[..., Any] | None = None
    name: str = ""
    recorded_code_hash: str = ""
    recorded_module_hash: str = ""
    imports: tuple[str, ...] = field(default=())
    recorded_code_parts: Mapping[str, str] = field(default_factory=dict)
    inputs: Mapping[str, Sequence[str]] = field(default_factory=dict, hash=False)
    declassify: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.function is None and not self.name:
            raise DefinitionError("PythonTransform needs a function")
        owner = f"PythonTransform {self.name or getattr(self.function, '__qualname__', '')!r}"
        if isinstance(self.inputs, str) or not isinstance(self.inputs, Mapping):
            raise DefinitionError(
                f"{owner}: inputs must map output columns to the source columns each reads, "
                f"e.g. {{'spend_7d': ['amount']}}; got {self.inputs!r}"
            )
        inputs = {}
        for column, read in self.inputs.items():
            if isinstance(read, str) or not all(isinstance(c, str) for c in read):
                raise DefinitionError(
                    f"{owner}: inputs[{column!r}] must be a list of source column names, "
                    f"got {read!r}"
                )
            inputs[str(column)] = tuple(read)
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "declassify", _declassify(owner, self.declassify))
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
            **(
                {"inputs": {k: list(v) for k, v in sorted(self.inputs.items())}}
                if self.inputs
                else {}
            ),
            **({"declassify": dict(sorted(self.declassify.items()))} if self.declassify else {}),
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
        return SQLTransform(data["query"], declassify=data.get("declassify", {}))
    return PythonTransform(
        None,
        name=data["name"],
        recorded_code_hash=data.get("code_hash", ""),
        recorded_module_hash=data.get("module_hash", ""),
        imports=tuple(data.get("imports", ())),
        recorded_code_parts=dict(data.get("code_parts", {})),
        inputs=data.get("inputs", {}),
        declassify=data.get("declassify", {}),
    )
