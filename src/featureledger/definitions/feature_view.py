"""Feature views: selections of features from one or more groups, joined on entity keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from featureledger.definitions.code import function_hash
from featureledger.definitions.feature_group import FeatureGroup, FeatureSelection
from featureledger.definitions.field import Field, as_field
from featureledger.definitions.identity import VersionId
from featureledger.definitions.names import as_items, as_mapping, check_name
from featureledger.errors import DefinitionError


@dataclass(frozen=True)
class ViewSource:
    """One group's part of a view: which features, from which definition major version."""

    group: str
    features: tuple[str, ...]
    major: int | None = None
    join_key_map: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "major": self.major,
            "features": list(self.features),
            "join_key_map": dict(sorted(self.join_key_map.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ViewSource:
        return cls(
            group=data["group"],
            features=tuple(data["features"]),
            major=data.get("major"),
            join_key_map=dict(data.get("join_key_map", {})),
        )


@dataclass(frozen=True)
class OnDemand:
    """An on-demand transform: ``function(table) -> columns`` computed from the view's
    features (and ``request`` fields the caller sends with each request), vectorized over
    Arrow. The same function object runs in `training_data` (over the whole frame) and in
    `get_online_features`, so the two cannot drift apart. The registry keeps its name,
    outputs and code hash; the code stays in the repository.
    """

    name: str
    function: Callable[[pa.Table], Any] | None
    outputs: Sequence[Field | str]
    request: Sequence[Field | str] = ()
    recorded_code_hash: str = ""

    def __post_init__(self) -> None:
        check_name("on-demand transform", self.name)
        what = f"on-demand transform {self.name!r}"
        outputs = as_items(f"{what}: outputs", self.outputs, single=(str, Field))
        request = as_items(f"{what}: request", self.request, single=(str, Field))
        object.__setattr__(self, "outputs", tuple(as_field(f, "float64") for f in outputs))
        object.__setattr__(self, "request", tuple(as_field(f, "float64") for f in request))
        if not self.outputs:
            raise DefinitionError(f"on-demand transform {self.name!r}: declare its outputs")

    @property
    def output_fields(self) -> tuple[Field, ...]:
        return self.outputs  # type: ignore[return-value]

    @property
    def request_fields(self) -> tuple[Field, ...]:
        return self.request  # type: ignore[return-value]

    @property
    def code_hash(self) -> str:
        if self.function is None:
            return self.recorded_code_hash
        return function_hash(self.function).value

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outputs": [f.to_dict() for f in self.output_fields],
            "request": [f.to_dict() for f in self.request_fields],
            "code_hash": self.code_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OnDemand:
        return cls(
            data["name"],
            None,
            [Field.from_dict(f) for f in data["outputs"]],
            [Field.from_dict(f) for f in data.get("request", [])],
            recorded_code_hash=data.get("code_hash", ""),
        )


@dataclass(frozen=True)
class FeatureView:
    """What a model reads: features from groups, joined point-in-time on entity keys.

    ``full_feature_names=True`` prefixes every output column with its group name
    (``user_stats__f0``); otherwise names must be unique across the view.
    """

    name: str
    features: Sequence[FeatureGroup | FeatureSelection | ViewSource]
    version: int | None = None
    full_feature_names: bool = False
    #: why the view reads its features; required when it selects pii or sensitive columns
    purpose: str = ""
    #: what the data is used for (e.g. "commercial", "research"); input licences must allow it
    use: str | None = None
    #: on-demand transforms computed from the joined features and request data
    on_demand: Sequence[OnDemand] = ()
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    #: columns kept with its training sets but not fed to the model (e.g. ``region``):
    #: the slices `FeatureStore.evaluate` reports on
    helpers: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_name("feature view", self.name)
        object.__setattr__(
            self, "helpers", as_items(f"feature view {self.name!r}: helpers", self.helpers)
        )
        what = f"feature view {self.name!r}"
        items = as_items(
            f"{what}: features",
            self.features,
            single=(FeatureGroup, FeatureSelection, ViewSource),
        )
        if not items:
            raise DefinitionError(f"{what}: select at least one feature")
        sources: list[ViewSource] = []
        for item in items:
            if isinstance(item, FeatureGroup):
                item = item.select()
            if isinstance(item, FeatureSelection):
                item = ViewSource(
                    item.group.name, item.features, item.group.version, dict(item.join_key_map)
                )
            if not isinstance(item, ViewSource):
                raise DefinitionError(
                    f"feature view {self.name!r}: features must be FeatureGroups or selections "
                    f"like group[['f0', 'f1']], got {item!r}"
                )
            sources.append(item)
        groups = [s.group for s in sources]
        dupes = sorted({g for g in groups if groups.count(g) > 1})
        if dupes:
            raise DefinitionError(
                f"feature view {self.name!r}: group(s) {dupes} selected twice; select all "
                "wanted features of a group in one selection"
            )
        if self.version is not None and (not isinstance(self.version, int) or self.version < 1):
            raise DefinitionError(f"feature view {self.name!r}: version must be an integer >= 1")
        object.__setattr__(self, "features", tuple(sources))
        on_demand = as_items(f"{what}: on_demand", self.on_demand, single=(OnDemand,))
        object.__setattr__(self, "on_demand", on_demand)
        object.__setattr__(self, "tags", as_mapping(f"{what}: tags", self.tags))
        if not self.full_feature_names:
            names = [f for s in self.sources for f in s.features]
            clash = sorted({n for n in names if names.count(n) > 1})
            if clash:
                raise DefinitionError(
                    f"feature view {self.name!r}: feature name(s) {clash} come from more than "
                    "one group; select only one of them or set full_feature_names=True"
                )

    @property
    def sources(self) -> tuple[ViewSource, ...]:
        return self.features  # type: ignore[return-value]

    def output_name(self, source: ViewSource, feature: str) -> str:
        return f"{source.group}__{feature}" if self.full_feature_names else feature

    def identity(self, major: int | None = None) -> VersionId:
        return VersionId("feature_view", self.name, major or self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sources": [s.to_dict() for s in self.sources],
            "full_feature_names": self.full_feature_names,
            **({"purpose": self.purpose} if self.purpose else {}),
            **({"use": self.use} if self.use else {}),
            **({"on_demand": [o.to_dict() for o in self.on_demand]} if self.on_demand else {}),
            **({"helpers": list(self.helpers)} if self.helpers else {}),
            "description": self.description,
            "owner": self.owner,
            "tags": dict(sorted(self.tags.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], version: int | None = None) -> FeatureView:
        return cls(
            name=data["name"],
            features=[ViewSource.from_dict(s) for s in data["sources"]],
            version=version,
            full_feature_names=data.get("full_feature_names", False),
            purpose=data.get("purpose", ""),
            use=data.get("use"),
            on_demand=[OnDemand.from_dict(o) for o in data.get("on_demand", [])],
            description=data.get("description", ""),
            owner=data.get("owner", ""),
            tags=data.get("tags", {}),
            helpers=tuple(data.get("helpers", ())),
        )
