"""`plan` and `apply`: register definitions with semantic versions, and look them up."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from featureledger.config import STATE_DIR
from featureledger.contracts import classify_contract_change, contract_from_yaml
from featureledger.definitions import Definition, Entity, FeatureGroup, FeatureView, ViewSource
from featureledger.errors import BreakingChangeError, DefinitionError, NotFoundError
from featureledger.hashing import ContentHash, definition_hash
from featureledger.lineage.privacy import PRIVATE, effective_classification
from featureledger.offline import DeltaGroupTable
from featureledger.registry import DefinitionRecord, RegistryBackend
from featureledger.store._catalog import Catalog
from featureledger.store._records import VersionRecords
from featureledger.store._specs import group_from_spec, group_spec
from featureledger.store._tables import Tables
from featureledger.versioning import compat
from featureledger.versioning.provenance import current_user
from featureledger.versioning.writer import rebuild_content, widen

Action = Literal["create", "update", "unchanged", "refused"]


@dataclass
class PlanItem:
    """What `apply` would do to one definition."""

    identity: str
    action: Action
    before: str | None
    after: str | None
    level: str
    reasons: list[str] = field(default_factory=list)


@dataclass
class Plan:
    items: list[PlanItem] = field(default_factory=list)

    @property
    def refused(self) -> list[PlanItem]:
        return [i for i in self.items if i.action == "refused"]

    @property
    def changes(self) -> list[PlanItem]:
        return [i for i in self.items if i.action in ("create", "update")]


def _semver(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def _classify_group(old: dict[str, Any], new: dict[str, Any]) -> compat.Change:
    """Definition rules plus contract rules (a tightened error rule is breaking)."""
    change = compat.classify_group(old, new)
    before, after = old.get("contract"), new.get("contract")
    if before == after:
        return change
    if before is None or after is None:
        # adding a contract does not re-judge stored data (`featureledger contract test`
        # does), and removing one loosens: both are minor
        change.note("minor", "contract " + ("added" if before is None else "removed"))
        return change
    sub = classify_contract_change(contract_from_yaml(before), contract_from_yaml(after))
    for reason in sub.reasons:
        text, _, level = reason.rpartition(" [")
        level = level.rstrip("]")
        change.note(
            level if level in ("patch", "minor", "major") else "minor",  # type: ignore[arg-type]
            "contract: " + text,
        )
    return change


class DefinitionService:
    """Definitions: lookups, plan, apply, view rollback and group storage evolution."""

    def __init__(
        self,
        *,
        registry: RegistryBackend,
        tables: Tables,
        catalog: Catalog,
        records: VersionRecords,
        repo: Path,
    ) -> None:
        self.registry = registry
        self.tables = tables
        self.catalog = catalog
        self.records = records
        self.repo = repo

    def plan(self, objects: Iterable[Definition]) -> Plan:
        """What `apply` would change, without changing anything."""
        return self._plan(list(objects))[0]

    def apply(self, objects: Iterable[Definition]) -> Plan:
        """Register definitions, versioning each change; all or nothing.

        Raises `BreakingChangeError` (and applies nothing) when any change is breaking
        for an existing version.
        """
        # two processes applying at once would both plan "create" and collide; under the
        # lock the second plans against what the first recorded
        with self._apply_lock():
            return self._apply(list(objects))

    @contextlib.contextmanager
    def _apply_lock(self) -> Iterator[None]:
        path = self.repo / STATE_DIR / "apply.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _apply(self, objects: list[Definition]) -> Plan:
        self.catalog.changed()  # online reads re-resolve definitions
        self.catalog.use_definitions(objects)
        plan, staged = self._plan(objects)
        for item in plan.items:
            if item.action == "refused":
                major = int(item.identity.rsplit("@v", 1)[-1]) if "@v" in item.identity else 1
                reasons = [
                    r.removesuffix(" [major]") for r in item.reasons if r.endswith("[major]")
                ]
                raise BreakingChangeError(item.identity, reasons, major + 1)
        user = current_user()
        for item, (kind, spec, target) in zip(plan.items, staged, strict=True):
            if item.action not in ("create", "update"):
                continue
            major, minor, patch = target
            record = DefinitionRecord(
                kind=kind,
                name=spec["name"],
                major=major,
                minor=minor,
                patch=patch,
                spec=spec,
                spec_hash=definition_hash(spec),
                created_at=datetime.now(UTC),
                created_by=user,
                reasons=item.reasons,
            )
            if kind == "feature_group":
                self._prepare_group_storage(record, item)
            self.registry.add_definition(record)
            self.registry.audit(
                user, "apply", item.identity, {"version": record.semver, "reasons": item.reasons}
            )
        return plan

    def rollback_view(self, name: str, *, to: str, reason: str = "") -> DefinitionRecord:
        """Register the spec of an earlier version of a feature view as its newest version.

        ``to`` is a semantic version such as ``"1.0.0"``; the new version is the next minor
        of that major (history is kept, nothing is deleted). Rolling back may drop features
        added since, which `apply` would call breaking: a rollback is that explicit choice.
        """
        history = self.registry.definitions("feature_view", name)
        target = next((d for d in history if d.semver == to), None)
        if target is None:
            known = ", ".join(d.semver for d in history) or "none"
            raise NotFoundError(f"feature_view/{name} has no version {to}; versions: {known}")
        current = self.registry.latest_definition("feature_view", name, target.major)
        assert current is not None
        if current.spec == target.spec:
            return current
        user = current_user()
        note = f"rollback to {to}" + (f": {reason}" if reason else "")
        record = DefinitionRecord(
            kind="feature_view",
            name=name,
            major=current.major,
            minor=current.minor + 1,
            patch=0,
            spec=target.spec,
            spec_hash=target.spec_hash,
            created_at=datetime.now(UTC),
            created_by=user,
            reasons=[note],
        )
        self.registry.add_definition(record)
        self.registry.audit(
            user,
            "rollback",
            str(record.identity),
            {"to": to, "version": record.semver, "reason": reason},
        )
        return record

    def _plan(
        self, objects: list[Definition]
    ) -> tuple[Plan, list[tuple[str, dict[str, Any], tuple[int, int, int]]]]:
        entities: dict[str, Entity] = {}
        groups: list[FeatureGroup] = []
        views: list[FeatureView] = []
        for obj in objects:
            if isinstance(obj, Entity):
                entities[obj.name] = obj
            elif isinstance(obj, FeatureGroup):
                groups.append(obj)
            elif isinstance(obj, FeatureView):
                views.append(obj)
            else:
                raise DefinitionError(
                    f"cannot apply {obj!r}: expected Entity, FeatureGroup or FeatureView"
                )
        for g in groups:  # entities a group names are applied with it
            for e in g.entities:
                entities.setdefault(e.name, e)
        for kind, items in (("feature group", groups), ("feature view", views)):
            names = [i.name for i in items]
            seen = [n for n in names if names.count(n) > 1]
            if seen:
                raise DefinitionError(f"{kind} {seen[0]!r} is given twice in one apply")

        plan = Plan()
        staged: list[tuple[str, dict[str, Any], tuple[int, int, int]]] = []
        group_majors: dict[str, int] = {}
        group_specs: dict[str, dict[str, Any]] = {}

        for e in entities.values():
            spec = e.to_dict()
            current = self.registry.latest_definition("entity", e.name)
            item, target = self._classify(
                "entity", e.name, None, spec, current, compat.classify_entity
            )
            item.identity = f"entity/{e.name}"
            plan.items.append(item)
            staged.append(("entity", spec, target))
        for g in groups:
            registered = {e.name: e for e in g.entities}
            for ename, ent in registered.items():
                if entities[ename].to_dict() != ent.to_dict():
                    raise DefinitionError(
                        f"feature group {g.name!r} uses a different definition of entity "
                        f"{ename!r} than the one being applied; use the same Entity object"
                    )
            spec = group_spec(g)
            latest = self.registry.latest_definition("feature_group", g.name)
            major = g.version or (latest.major if latest else 1)
            if latest is not None and major > latest.major + 1:
                raise DefinitionError(
                    f"feature group {g.name!r}: version={major} skips versions; the latest is "
                    f"v{latest.major}, so the next major version is {latest.major + 1}"
                )
            current = self.registry.latest_definition("feature_group", g.name, major)
            item, target = self._classify(
                "feature_group", g.name, major, spec, current, _classify_group
            )
            plan.items.append(item)
            staged.append(("feature_group", spec, target))
            group_majors[g.name] = major
            group_specs[g.name] = spec
        for v in views:
            sources = []
            for s in v.sources:
                smajor = s.major or group_majors.get(s.group)
                gspec = group_specs.get(s.group) if smajor == group_majors.get(s.group) else None
                if gspec is None:
                    rec = self.registry.latest_definition("feature_group", s.group, smajor)
                    if rec is None:
                        raise NotFoundError(
                            f"feature view {v.name!r} selects from feature_group/{s.group}"
                            + (f"@v{smajor}" if smajor else "")
                            + ", which is not registered; apply the group with the view"
                        )
                    gspec, smajor = rec.spec, rec.major
                known = [f["name"] for f in gspec["features"]]
                labels = effective_classification(
                    group_from_spec(gspec, smajor or 1),
                    self._staged_lookup(group_specs, group_majors),
                )
                private = [
                    labels[f].why(s.group, f)
                    for f in s.features
                    if f in labels and labels[f].classification in PRIVATE
                ]
                if private and not v.purpose:
                    raise DefinitionError(
                        f"feature view {v.name!r} selects pii/sensitive column(s) without a "
                        f"declared purpose: {'; '.join(private)}. Set purpose='...' on the view "
                        "(why the model needs them), or leave those columns out"
                    )
                missing = [f for f in s.features if f not in known]
                if missing:
                    raise DefinitionError(
                        f"feature view {v.name!r}: feature_group/{s.group}@v{smajor} has no "
                        f"feature(s) {missing}"
                    )
                sources.append(ViewSource(s.group, s.features, smajor, s.join_key_map))
            pinned = dataclasses.replace(v, features=sources)
            spec = pinned.to_dict()
            latest = self.registry.latest_definition("feature_view", v.name)
            major = v.version or (latest.major if latest else 1)
            if latest is not None and major > latest.major + 1:
                raise DefinitionError(
                    f"feature view {v.name!r}: version={major} skips versions; the next major "
                    f"version is {latest.major + 1}"
                )
            current = self.registry.latest_definition("feature_view", v.name, major)
            item, target = self._classify(
                "feature_view", v.name, major, spec, current, compat.classify_view
            )
            plan.items.append(item)
            staged.append(("feature_view", spec, target))
        return plan, staged

    def _staged_lookup(
        self, specs: dict[str, dict[str, Any]], majors: dict[str, int]
    ) -> Callable[[str, int | None], FeatureGroup]:
        """Groups as this apply would leave them: staged ones first, then the registry."""

        def lookup(name: str, major: int | None) -> FeatureGroup:
            if name in specs and (major is None or major == majors[name]):
                return group_from_spec(specs[name], majors[name])
            rec = self.registry.latest_definition("feature_group", name, major)
            if rec is None:
                raise NotFoundError(f"feature_group/{name} is not registered")
            return group_from_spec(rec.spec, rec.major)

        return lookup

    @staticmethod
    def _classify(
        kind: str,
        name: str,
        major: int | None,
        spec: dict[str, Any],
        current: DefinitionRecord | None,
        rules: Any,
    ) -> tuple[PlanItem, tuple[int, int, int]]:
        ident = f"{kind}/{name}" + (f"@v{major}" if major else "")
        if current is None:
            target = (major or 1, 0, 0)
            return PlanItem(ident, "create", None, _semver(target), "create"), target
        change: compat.Change = rules(current.spec, spec)
        before = (current.major, current.minor, current.patch)
        if change.level == "none":
            return PlanItem(ident, "unchanged", current.semver, current.semver, "none"), before
        if change.breaking:
            return PlanItem(ident, "refused", current.semver, None, "major", change.reasons), before
        target = compat.bump(before, change.level)
        return (
            PlanItem(
                ident, "update", current.semver, _semver(target), change.level, change.reasons
            ),
            target,
        )

    def _prepare_group_storage(self, record: DefinitionRecord, item: PlanItem) -> None:
        group = group_from_spec(record.spec, record.major)
        table = self.tables.table(group.name, record.major)
        run_id = str(uuid.uuid4())
        with table.lock():
            if not table.exists():
                version = table.create(group.arrow_schema, run_id)
                self.records.record(
                    group,
                    table,
                    version,
                    "create",
                    ContentHash(),
                    run_id,
                    note=f"created by apply of {record.semver}",
                )
                return
            self.records.sync(group, table)
            self.evolve_storage(group, table, run_id)

    def evolve_storage(self, group: FeatureGroup, table: DeltaGroupTable, run_id: str) -> None:
        """Bring the table's schema up to the definition: widen types, add columns.

        The caller holds the table lock.
        """
        stored = table.schema()
        wanted = group.arrow_schema
        widened = [
            f for f in wanted if f.name in stored.names and stored.field(f.name).type != f.type
        ]
        if widened:
            # widening rewrites the files with the new types; rows stay the same
            version = widen(table, wanted, run_id)
            self.records.record(
                group,
                table,
                version,
                "widen",
                rebuild_content(table, version),
                run_id,
                note="types widened: " + ", ".join(f.name for f in widened),
            )
        added = [f for f in wanted if f.name not in stored.names]
        if added:
            parent = self.records.latest(group.name, group.version or 1)
            version = table.add_columns(added, run_id)
            # null cells hash to nothing, so an added column keeps the content hash
            self.records.record(
                group,
                table,
                version,
                "add-columns",
                parent.content,
                run_id,
                note="added: " + ", ".join(f.name for f in added),
            )
