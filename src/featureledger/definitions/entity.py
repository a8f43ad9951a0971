"""Entities: business keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from featureledger.definitions.field import Field, as_field
from featureledger.definitions.identity import VersionId
from featureledger.definitions.names import as_items, as_mapping, check_name
from featureledger.errors import DefinitionError


@dataclass(frozen=True)
class Entity:
    """A business key such as a user or a card, with the column(s) that identify it.

    ``Entity("user", join_keys=["user_id"])`` has one int64 key; pass `Field`s for other
    types or several keys: ``Entity("pair", join_keys=[Field("a", "string"), "b"])``.
    """

    name: str
    join_keys: Sequence[str | Field] = ()
    dtype: str | pa.DataType = "int64"
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("entity", self.name)
        given = as_items(f"entity {self.name!r}: join_keys", self.join_keys, single=(str, Field))
        keys = tuple(as_field(k, self.dtype) for k in (given or [self.name + "_id"]))
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise DefinitionError(f"entity {self.name!r}: join keys repeat a name: {names}")
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "tags", as_mapping(f"entity {self.name!r}: tags", self.tags))

    @property
    def key_fields(self) -> tuple[Field, ...]:
        return tuple(self.join_keys)  # type: ignore[arg-type]

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.key_fields)

    @property
    def identity(self) -> VersionId:
        return VersionId("entity", self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "join_keys": [k.to_dict() for k in self.key_fields],
            "description": self.description,
            "owner": self.owner,
            "tags": dict(sorted(self.tags.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entity:
        return cls(
            name=data["name"],
            join_keys=[Field.from_dict(k) for k in data["join_keys"]],
            description=data.get("description", ""),
            owner=data.get("owner", ""),
            tags=data.get("tags", {}),
        )
