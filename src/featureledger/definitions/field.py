"""Typed columns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import pyarrow as pa

from featureledger.definitions.names import check_name
from featureledger.definitions.types import parse_type, type_name
from featureledger.errors import DefinitionError

Classification = Literal["public", "internal", "pii", "sensitive"]
CLASSIFICATIONS: tuple[str, ...] = get_args(Classification)


@dataclass(frozen=True)
class Field:
    """A typed column: a feature, a join key or a time column."""

    name: str
    dtype: pa.DataType | str = "float64"
    description: str = ""
    classification: Classification = "internal"
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("column", self.name)
        object.__setattr__(self, "dtype", parse_type(self.dtype))
        object.__setattr__(self, "tags", dict(self.tags))
        if self.classification not in CLASSIFICATIONS:
            raise DefinitionError(
                f"column {self.name!r}: classification {self.classification!r} is not one of "
                f"{', '.join(CLASSIFICATIONS)}"
            )

    @property
    def arrow_type(self) -> pa.DataType:
        assert isinstance(self.dtype, pa.DataType)
        return self.dtype

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": type_name(self.arrow_type)}
        if self.description:
            out["description"] = self.description
        if self.classification != "internal":
            out["classification"] = self.classification
        if self.tags:
            out["tags"] = dict(sorted(self.tags.items()))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Field:
        return cls(
            name=data["name"],
            dtype=data.get("dtype", "float64"),
            description=data.get("description", ""),
            classification=data.get("classification", "internal"),
            tags=data.get("tags", {}),
        )


def as_field(spec: str | Field, default_dtype: str | pa.DataType) -> Field:
    return spec if isinstance(spec, Field) else Field(spec, default_dtype)
