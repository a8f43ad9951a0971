"""The catalog: registered definitions looked up by name and version, with the functions
of on-demand transforms seen in this process."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from featureledger.definitions import Entity, FeatureGroup, FeatureView
from featureledger.registry import DefinitionRecord, RegistryBackend
from featureledger.store._specs import group_from_spec


class Catalog:
    """Lookups of registered definitions; `DefinitionService` changes them."""

    def __init__(self, *, registry: RegistryBackend) -> None:
        self.registry = registry
        #: (view, transform, code hash) -> on-demand transform with its function, from
        #: definitions seen in this process
        self._on_demand: dict[tuple[str, str, str], Any] = {}
        #: bumped by every apply in this process, so cached resolutions can tell they are stale
        self.generation = 0

    def changed(self) -> None:
        """Definitions were applied in this process: cached resolutions are stale."""
        self.generation += 1

    def get_entity(self, name: str) -> Entity:
        return Entity.from_dict(self.registry.get_definition("entity", name, None).spec)

    def get_feature_group(
        self, name: str | FeatureGroup, version: int | None = None
    ) -> FeatureGroup:
        if isinstance(name, FeatureGroup):
            version = version or name.version
            name = name.name
        rec = self.registry.get_definition("feature_group", name, version)
        return group_from_spec(rec.spec, rec.major)

    def get_feature_view(self, name: str | FeatureView, version: int | None = None) -> FeatureView:
        if isinstance(name, FeatureView):
            self.use_definitions([name])
            version = version or name.version
            name = name.name
        rec = self.registry.get_definition("feature_view", name, version)
        fv = FeatureView.from_dict(rec.spec, rec.major)
        if not fv.on_demand:
            return fv
        # the registry keeps code hashes; the functions come from definitions seen in this
        # process, and only when their code is the registered code
        live = self._on_demand
        return dataclasses.replace(
            fv, on_demand=[live.get((fv.name, o.name, o.code_hash), o) for o in fv.on_demand]
        )

    def use_definitions(self, objects: Iterable[Any]) -> None:
        """Make the functions of these definitions (on-demand transforms) available to
        reads; `apply` does this for what it applies, the CLI for the repository's files."""
        for obj in objects:
            if isinstance(obj, FeatureView):
                for o in obj.on_demand:
                    if o.function is not None:
                        self._on_demand[(obj.name, o.name, o.code_hash)] = o

    def list_definitions(self, kind: str) -> list[DefinitionRecord]:
        """Every registered version of every definition of ``kind``."""
        return self.registry.definitions(kind)
