"""Feature groups: tables of model-independent features for one entity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, get_args

import pyarrow as pa

from featureledger.definitions.contract import Contract
from featureledger.definitions.entity import Entity
from featureledger.definitions.field import Field, as_field
from featureledger.definitions.identity import VersionId
from featureledger.definitions.names import as_items, as_mapping, check_name
from featureledger.definitions.pipeline import (
    Source,
    Transform,
    source_from_dict,
    transform_from_dict,
)
from featureledger.definitions.types import TIMESTAMP
from featureledger.errors import DefinitionError

Policy = Literal["strict", "quarantine", "warn"]
POLICIES: tuple[str, ...] = get_args(Policy)


@dataclass(frozen=True)
class FeatureGroup:
    """A versioned table of features keyed by an entity's join keys and an event time.

    Without ``event_time`` the group holds static reference data (one row per key,
    joined on keys alone). ``ttl`` bounds how old a value may be when it is joined
    or served; ``None`` means it never expires. ``version`` asks for a definition
    major version; leave it out to stay on the latest one.
    """

    name: str
    entity: Entity | Sequence[Entity]
    features: Sequence[Field | str] = ()
    event_time: str | None = "event_timestamp"
    created_time: str | None = None
    ttl: timedelta | None = None
    online: bool = False
    version: int | None = None
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    licenses: Sequence[str] = ()
    #: where a feature pipeline reads rows (see `FeatureStore.run_pipeline`)
    source: Source | None = None
    #: how it turns a window of the source into rows of this group
    transform: Transform | None = None
    #: quality rules every batch must pass (see docs/contracts.md)
    contract: Contract | None = None
    #: what ingest does with a batch that breaks an error rule of the contract
    policy: Policy = "strict"

    def __post_init__(self) -> None:
        check_name("feature group", self.name)
        what = f"feature group {self.name!r}"
        entities = (
            (self.entity,)
            if isinstance(self.entity, Entity)
            else as_items(f"{what}: entity", self.entity)
        )
        if not entities or not all(isinstance(e, Entity) for e in entities):
            raise DefinitionError(
                f"feature group {self.name!r}: entity must be an Entity or a list of them"
            )
        object.__setattr__(self, "entity", entities)
        features = as_items(f"{what}: features", self.features, single=(str, Field))
        object.__setattr__(self, "features", tuple(as_field(f, "float64") for f in features))
        object.__setattr__(self, "tags", as_mapping(f"{what}: tags", self.tags))
        licenses = as_items(f"{what}: licenses", self.licenses)
        if not all(isinstance(x, str) and x for x in licenses):
            raise DefinitionError(f"{what}: licenses must be non-empty strings, got {licenses!r}")
        object.__setattr__(self, "licenses", licenses)
        for col in (self.event_time, self.created_time):
            if col is not None:
                check_name("column", col)
        if self.created_time is not None and self.event_time is None:
            raise DefinitionError(
                f"feature group {self.name!r}: created_time needs an event_time; a static "
                "group (event_time=None) keeps one row per key"
            )
        if self.ttl is not None and (
            not isinstance(self.ttl, timedelta) or self.ttl <= timedelta(0)
        ):
            raise DefinitionError(
                f"feature group {self.name!r}: ttl must be a positive timedelta or None, "
                f"got {self.ttl!r}"
            )
        if self.ttl is not None and self.event_time is None:
            raise DefinitionError(
                f"feature group {self.name!r}: a static group (event_time=None) cannot have a ttl"
            )
        if self.version is not None and (not isinstance(self.version, int) or self.version < 1):
            raise DefinitionError(
                f"feature group {self.name!r}: version must be an integer >= 1, "
                f"got {self.version!r}"
            )
        if not self.features:
            raise DefinitionError(f"feature group {self.name!r}: declare at least one feature")
        if self.policy not in POLICIES:
            raise DefinitionError(
                f"feature group {self.name!r}: policy must be one of {POLICIES}, "
                f"got {self.policy!r}"
            )
        if self.contract is not None:
            self._check_contract(self.contract)
        if self.transform is not None and self.source is None:
            raise DefinitionError(
                f"feature group {self.name!r}: a transform needs a source to read from"
            )
        names = [c.name for c in self.columns]
        if self.transform is not None:
            named = {*self.transform.declassify, *getattr(self.transform, "inputs", {})}
            unknown = sorted(named - set(names))
            if unknown:
                raise DefinitionError(
                    f"feature group {self.name!r}: its transform's declassify/inputs name "
                    f"column(s) {unknown} the group does not have (it has {names})"
                )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DefinitionError(
                f"feature group {self.name!r}: column name(s) used twice: {dupes} "
                "(keys, time columns and features share one namespace)"
            )

    def _check_contract(self, contract: Contract) -> None:
        if contract.dataset != self.name:
            raise DefinitionError(
                f"feature group {self.name!r}: its contract is for dataset "
                f"{contract.dataset!r}; contracts are per group, name it {self.name!r}"
            )
        known = {c.name for c in self.columns}
        unknown = sorted(set(contract.column_names) - known)
        if unknown:
            raise DefinitionError(
                f"feature group {self.name!r}: its contract declares column(s) {unknown} the "
                f"group does not have (it has {sorted(known)})"
            )

    # -- derived views of the definition -------------------------------------------------
    @property
    def entities(self) -> tuple[Entity, ...]:
        return self.entity  # type: ignore[return-value]

    @property
    def key_fields(self) -> tuple[Field, ...]:
        return tuple(k for e in self.entities for k in e.key_fields)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.key_fields)

    @property
    def feature_fields(self) -> tuple[Field, ...]:
        return self.features  # type: ignore[return-value]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.feature_fields)

    @property
    def is_static(self) -> bool:
        return self.event_time is None

    @property
    def scd_type(self) -> int:
        """The slowly-changing-dimension type the group keeps (docs/concepts.md): 0 without
        an event time (one row per key), 2 with one (history, offline), 4 when it is also
        served online (latest row online, history offline)."""
        if self.event_time is None:
            return 0
        return 4 if self.online else 2

    @property
    def columns(self) -> tuple[Field, ...]:
        """Every stored column, in storage order: keys, times, features."""
        times = [Field(c, TIMESTAMP) for c in (self.event_time, self.created_time) if c]
        return (*self.key_fields, *times, *self.feature_fields)

    @property
    def arrow_schema(self) -> pa.Schema:
        keys = set(self.primary_key) | {self.event_time}
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.name not in keys) for c in self.columns]
        )

    @property
    def unique_key(self) -> tuple[str, ...]:
        """The columns no two stored rows share: primary key plus event time."""
        return self.primary_key + ((self.event_time,) if self.event_time else ())

    def identity(self, major: int | None = None) -> VersionId:
        return VersionId("feature_group", self.name, major or self.version)

    def __getitem__(self, names: str | Sequence[str]) -> FeatureSelection:
        """``group[["f0", "f1"]]`` selects features for a feature view."""
        return self.select(*([names] if isinstance(names, str) else names))

    def select(
        self, *names: str, join_key_map: Mapping[str, str] | None = None
    ) -> FeatureSelection:
        """Select some features (all when none are named) for a feature view."""
        return FeatureSelection(self, tuple(names), dict(join_key_map or {}))

    # -- serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entities": [e.to_dict() for e in self.entities],
            "features": [f.to_dict() for f in self.feature_fields],
            "event_time": self.event_time,
            "created_time": self.created_time,
            "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
            "online": self.online,
            "description": self.description,
            "owner": self.owner,
            "tags": dict(sorted(self.tags.items())),
            "licenses": list(self.licenses),
            # pipeline keys only when set, so plain groups keep their definition hash
            **({"source": self.source.to_dict()} if self.source else {}),
            **({"transform": self.transform.to_dict()} if self.transform else {}),
            # the contract itself is serialized by the store (contracts/ owns its YAML form)
            **({"policy": self.policy} if self.policy != "strict" else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], version: int | None = None) -> FeatureGroup:
        ttl = data.get("ttl_seconds")
        return cls(
            name=data["name"],
            entity=[Entity.from_dict(e) for e in data["entities"]],
            features=[Field.from_dict(f) for f in data["features"]],
            event_time=data.get("event_time"),
            created_time=data.get("created_time"),
            ttl=None if ttl is None else timedelta(seconds=ttl),
            online=data.get("online", False),
            version=version,
            description=data.get("description", ""),
            owner=data.get("owner", ""),
            tags=data.get("tags", {}),
            licenses=data.get("licenses", ()),
            source=source_from_dict(data.get("source")),
            transform=transform_from_dict(data.get("transform")),
            policy=data.get("policy", "strict"),
        )


@dataclass(frozen=True)
class FeatureSelection:
    """Some features of one group, as used by a feature view.

    ``join_key_map`` renames the group's join keys to the entity frame's columns,
    e.g. ``{"user_id": "payer_id"}`` when the frame calls the user ``payer_id``.
    """

    group: FeatureGroup
    names: tuple[str, ...] = ()
    join_key_map: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [n for n in self.names if n not in self.group.feature_names]
        if unknown:
            raise DefinitionError(
                f"feature group {self.group.name!r} has no feature(s) {unknown}; "
                f"it has {list(self.group.feature_names)}"
            )
        bad_keys = [k for k in self.join_key_map if k not in self.group.primary_key]
        if bad_keys:
            raise DefinitionError(
                f"join_key_map names {bad_keys}, which are not join keys of "
                f"{self.group.name!r} ({list(self.group.primary_key)})"
            )
        for target in self.join_key_map.values():
            check_name("entity frame column", target)

    @property
    def features(self) -> tuple[str, ...]:
        return self.names or self.group.feature_names
